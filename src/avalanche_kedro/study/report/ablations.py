"""Report section "Ablations" (T06): does the effect of g* track the MLP gain or attention?"""

from __future__ import annotations

from .decisions import (
    TRACKS_ATTENTION,
    TRACKS_UNRESOLVED,
    UNDETERMINED,
    decide_ablation,
    decide_null,
    decide_tracking,
)
from .formatting import _finite, ci, key_number, num, refs, signed
from .grouping import G_MATCH_ATOL, Finding, Group, _get, _one


def ablation_finding(group: Group) -> Finding | None:
    rows = group.t06
    if rows.empty:
        return None
    base = _one(rows, g_condition="g1", intervention_id="MLP_GLOBAL")
    at_star = rows[rows["g_condition"] == "gstar"]
    b_star = {str(r.intervention_id): float(r.b_tot) for r in at_star.itertuples()}
    result = decide_ablation(group.g_star, _get(base, "b_tot"), b_star)
    mlp_star = _one(at_star, intervention_id="MLP_GLOBAL")
    margin = [_get(mlp_star, f"opt_tracks_margin{s}") for s in ("", "_ci_low", "_ci_high")]
    paired = _finite(margin[1], margin[2])
    tracks = decide_tracking(result.tracks, (margin[1], margin[2]) if paired else None)
    base_cite = group.cite("T06", g_condition="g1", intervention="MLP_GLOBAL")
    if abs(group.g_star - 1.0) <= G_MATCH_ATOL:
        return Finding(
            "T06",
            UNDETERMINED,
            f"g* = 1, so every ablation runs at gain 1 and nothing can be attributed "
            f"({base_cite}).",
            (num(_get(base, "b_tot"), 3), "none (g* = 1)", "undetermined", "", refs("T06", rows)),
        )
    parts = []
    for name in sorted(result.shifts, key=lambda k: (k != "MLP_GLOBAL", k != "ATTN_GLOBAL", k)):
        row = _one(at_star, intervention_id=name)
        outcome = decide_null(
            _get(row, "delta_b_tot"),
            _get(row, "opt_delta_b_tot_ci_low"),
            _get(row, "opt_delta_b_tot_ci_high"),
        )
        shift_ci = (_get(row, "opt_shift_vs_g1_ci_low"), _get(row, "opt_shift_vs_g1_ci_high"))
        paired_ci = f" {ci(*shift_ci)}" if _finite(*shift_ci) else ""
        parts.append(
            f"{name} {num(b_star[name])} ({signed(result.shifts[name])}{paired_ci}; delta_b_tot "
            f"{num(_get(row, 'delta_b_tot'))} {outcome}; "
            f"{group.cite('T06', g_condition='gstar', intervention=name)})"
        )
    text = (
        f"From b_tot = {num(_get(base, 'b_tot'))} at g = 1 ({base_cite}), gain "
        f"{key_number(group.g_star)} gives b_tot: " + "; ".join(parts) + "."
    )
    if result.tracks is None:
        text += " MLP_GLOBAL or ATTN_GLOBAL is missing, so the effect cannot be attributed."
    else:
        mlp, attn = result.shifts["MLP_GLOBAL"], result.shifts["ATTN_GLOBAL"]
        sizes = f"|shift| {num(abs(mlp), 3)} for the MLP, {num(abs(attn), 3)} for attention"
        if not paired:
            who = "attention" if tracks == TRACKS_ATTENTION else "the MLP gain"
            text += (
                f" The effect tracks **{who}** (the larger |shift| of the two global gains: "
                f"{sizes}; a point comparison, T06 has no paired CI)"
            )
        elif tracks == TRACKS_UNRESOLVED:
            text += (
                f" Whether the effect tracks the MLP gain or attention is **not resolved** "
                f"({sizes}; |shift(MLP)| − |shift(ATTN)| = {signed(margin[0])} "
                f"{ci(margin[1], margin[2])}, a paired CI over the same windows that contains 0)"
            )
        else:
            who = "attention" if tracks == TRACKS_ATTENTION else "the MLP gain"
            text += (
                f" The effect tracks **{who}** ({sizes}; |shift(MLP)| − |shift(ATTN)| = "
                f"{signed(margin[0])} {ci(margin[1], margin[2])}, a paired CI over the same "
                "windows that excludes 0)"
            )
        if mlp * attn < 0:
            text += "; attention moves b_tot the other way"
        if result.strongest_band:
            text += f"; of the MLP bands, {result.strongest_band} moves it most"
        text += "."
    order = sorted(result.shifts, key=lambda k: (k != "MLP_GLOBAL", k != "ATTN_GLOBAL", k))
    cells = (
        num(_get(base, "b_tot"), 3),
        ", ".join(f"{_SHORT.get(k, k)} {signed(result.shifts[k], 2)}" for k in order),
        (tracks + (f" {ci(margin[1], margin[2])}" if paired else ""))
        if tracks
        else "undetermined (MLP_GLOBAL or ATTN_GLOBAL missing)",
        _SHORT.get(result.strongest_band, result.strongest_band or ""),
        refs("T06", rows),
    )
    return Finding("T06", tracks or UNDETERMINED, text, cells)


#: intervention ids as table cells (the section's paragraph names them in full)
_SHORT = {
    "MLP_GLOBAL": "MLP",
    "ATTN_GLOBAL": "ATTN",
    "MLP_BAND_EARLY": "early",
    "MLP_BAND_MID": "mid",
    "MLP_BAND_LATE": "late",
}
