"""T08: trained roles against the untrained control, on hand-made per-window counts and
avalanche tables. Every paired CI is recomputed here replicate by replicate with plain loops
over the same bootstrap indices (the windows each replicate draws) and must agree exactly."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.analysis.bootstrap import bootstrap_indices
from avalanche_kedro.analysis.nulls import NULL_PERM
from avalanche_kedro.study import control, schemas, tables
from avalanche_kedro.study.replication import ReplicationError

SPIKE = "SPIKE_ONE_SIDED_POS"
RATE = 0.01
GAINS = [0.9, 1.0, 1.1]
N = 7  # windows
B = 40  # bootstrap replicates
SEQ_IDS = np.array([3, 11, 4, 20, 8, 15, 1])  # deliberately unsorted
KEY = f"trained_vs_untrained|A|{SPIKE}|0.01"
GSTAR = {"base": 0.9, "instruct": 1.0, "untrained": 1.1}
DURATIONS = [3, 4, 5, 6, 8, 10, 13, 17, 25, 40]
PROVENANCE = {"run_id": "run-0123456789abcdef", "config_hash": "a" * 64, "code_version": "x"}


def _role_inputs(role: str, seed: int, few_durations_at: float | None = None) -> dict:
    """conditions, windows, nulls and avalanches of one role on the gain grid."""
    rng = np.random.default_rng(seed)
    conditions, windows, nulls, avalanches = [], [], [], []
    for cond_id, g in enumerate(GAINS):
        conditions.append(
            {
                "cond_id": cond_id,
                "null_id": "NULL_NONE",
                "intervention_id": "MLP_GLOBAL",
                "spike_def_id": SPIKE,
                "target_rate": RATE,
                "g": g,
            }
        )
        for seq_id in SEQ_IDS:
            den = int(rng.integers(20, 60))
            windows.append(
                {
                    "cond_id": cond_id,
                    "seq_id": int(seq_id),
                    "n_time": int(rng.integers(0, den // 2)),
                    "n_depth": int(rng.integers(0, den // 2)),
                    "den": den,
                    "events": int(den + rng.integers(0, 30)),
                }
            )
            null_den = den
            nulls.append(
                {
                    "cond_id": cond_id,
                    "null_id": NULL_PERM,
                    "seq_id": int(seq_id),
                    "n_time": int(rng.integers(0, null_den // 3)),
                    "n_depth": int(rng.integers(0, null_den // 3)),
                    "den": null_den,
                    "events": int(den),
                }
            )
            # another null in the same table must be ignored
            nulls.append({**nulls[-1], "null_id": "NULL_RASTER_WITHIN_LAYER_TIME_CIRC_SHIFT"})
            durations = DURATIONS[:5] if g == few_durations_at else DURATIONS
            for duration in rng.choice(durations, size=6):
                for adjacency in ("ADJ_4N", "ADJ_8N"):
                    size = float(
                        rng.integers(1, 4) * duration**1.4 * (1 if adjacency == "ADJ_4N" else 9)
                    )
                    avalanches.append(
                        {
                            "cond_id": cond_id,
                            "adjacency": adjacency,
                            "seq_id": int(seq_id),
                            "seq_index": 0,  # not used: windows are matched by seq_id
                            "size": int(round(size)),
                            "span_tokens": int(duration),
                        }
                    )
            # outside [3, 64]: never used
            avalanches.append(
                {
                    "cond_id": cond_id,
                    "adjacency": "ADJ_4N",
                    "seq_id": int(seq_id),
                    "seq_index": 0,
                    "size": 10_000,
                    "span_tokens": 1,
                }
            )
    frame = pd.DataFrame
    windows_frame = frame(windows).sample(frac=1.0, random_state=seed)  # any row order
    return {
        "gstar": frame([{"spike_def_id": SPIKE, "target_rate": RATE, "g_star": GSTAR[role]}]),
        "conditions": frame(conditions),
        "windows": windows_frame.reset_index(drop=True),
        "nulls": frame(nulls),
        "avalanches": frame(avalanches),
    }


ROLES = ["base", "instruct", "untrained"]


@pytest.fixture(scope="module")
def inputs():
    return {
        "base": _role_inputs("base", 1),
        "instruct": _role_inputs("instruct", 2),
        # the control keeps only 5 distinct durations at g = 1: no crackling difference there
        "untrained": _role_inputs("untrained", 3, few_durations_at=1.0),
    }


def compute(inputs, roles=ROLES, control_role="untrained") -> pd.DataFrame:
    return control.control_table(
        roles,
        control_role,
        {role: f"model-{role}" for role in roles},
        {r: inputs[r]["gstar"] for r in roles},
        {r: inputs[r]["conditions"] for r in roles},
        {r: inputs[r]["windows"] for r in roles},
        {r: inputs[r]["nulls"] for r in roles},
        {r: inputs[r]["avalanches"] for r in roles},
        replicates=B,
    )


# ---- the hand computation ------------------------------------------------------------------


def _at(frame: pd.DataFrame, g: float, extra=None) -> pd.DataFrame:
    cond_id = GAINS.index(g)
    part = frame[frame["cond_id"] == cond_id]
    if extra is not None:
        part = part[extra(part)]
    return part


def by_hand(role_inputs: dict, g: float, windows: np.ndarray) -> dict[str, float]:
    """The four statistics over the windows at positions ``windows`` (repeats count) of the
    seq_id-sorted window list, with explicit sums."""
    order = np.sort(SEQ_IDS)
    real = _at(role_inputs["windows"], g).set_index("seq_id")
    null = _at(role_inputs["nulls"], g, lambda p: p["null_id"] == NULL_PERM).set_index("seq_id")
    num = den = null_num = null_den = 0.0
    totals = []
    for position in windows:
        seq_id = order[position]
        num += real.loc[seq_id, "n_time"] + real.loc[seq_id, "n_depth"]
        den += real.loc[seq_id, "den"]
        null_num += null.loc[seq_id, "n_time"] + null.loc[seq_id, "n_depth"]
        null_den += null.loc[seq_id, "den"]
        totals.append(float(real.loc[seq_id, "events"]))
    totals = np.array(totals)
    b_tot = num / den
    avalanches = _at(role_inputs["avalanches"], g, lambda p: p["adjacency"] == "ADJ_4N")
    sizes_by_duration: dict[int, list[float]] = {}
    for position in windows:
        mine = avalanches[avalanches["seq_id"] == order[position]]
        for size, duration in zip(mine["size"], mine["span_tokens"], strict=True):
            if 3 <= duration <= 64:
                sizes_by_duration.setdefault(int(duration), []).append(float(size))
    durations = sorted(sizes_by_duration)
    gamma = float("nan")
    if len(durations) >= 2:
        x = np.log(np.array(durations, dtype=float))
        y = np.log([np.mean(sizes_by_duration[d]) for d in durations])
        gamma = float(np.polyfit(x, y, 1)[0])
    return {
        "b_tot": b_tot,
        "delta_b_tot": b_tot - null_num / null_den,
        "chi": totals.var() / (totals.mean() + 1e-8),
        "crackling_gamma": gamma,
        "points": len(durations),
    }


def expected_row(inputs, role: str, control_role: str, g_role: float, g_control: float) -> dict:
    everything = np.arange(N)
    point = {
        side: by_hand(inputs[name], g, everything)
        for side, name, g in (("compared", role, g_role), ("control", control_role, g_control))
    }
    full_points = {side: point[side]["points"] for side in point}
    indices = bootstrap_indices(N, B, KEY)
    diffs = {stat: [] for stat in control.STATS}
    for drawn in indices:
        reps = {
            "compared": by_hand(inputs[role], g_role, drawn),
            "control": by_hand(inputs[control_role], g_control, drawn),
        }
        for stat in control.STATS:
            values = [reps[side][stat] for side in ("compared", "control")]
            if stat == "crackling_gamma" and any(
                reps[side]["points"] < min(8, full_points[side]) for side in reps
            ):
                values = [float("nan"), 0.0]  # that replicate lost too many durations
            diffs[stat].append(values[0] - values[1])
    out = {}
    for stat in control.STATS:
        kept = np.array(diffs[stat])
        kept = kept[np.isfinite(kept)]
        out[stat] = (
            point["compared"][stat] - point["control"][stat],
            *np.percentile(kept, [2.5, 97.5]),
            point["compared"][stat],
            point["control"][stat],
        )
    out["points"] = full_points
    return out


# ---- tests ----------------------------------------------------------------------------------


def test_one_row_per_compared_role_with_both_gstar(inputs):
    table = compute(inputs)
    assert list(table["compared_role"]) == ["base", "instruct"]
    assert set(table["control_role"]) == {"untrained"}
    assert list(table["g_star_compared"]) == [0.9, 1.0]
    assert set(table["g_star_control"]) == {1.1}
    assert set(table["n_sequences"]) == {N} and set(table["bootstrap_replicates"]) == {B}
    assert list(table["control_model_id"]) == ["model-untrained"] * 2


@pytest.mark.parametrize("role", ["base", "instruct"])
def test_paired_differences_at_gstar_equal_the_hand_computation(inputs, role):
    row = compute(inputs).set_index("compared_role").loc[role]
    expected = expected_row(inputs, role, "untrained", GSTAR[role], GSTAR["untrained"])
    for stat in control.STATS:
        columns = [
            f"diff_{stat}",
            f"diff_{stat}_ci_low",
            f"diff_{stat}_ci_high",
            f"{stat}_compared",
            f"{stat}_control",
        ]
        assert [row[c] for c in columns] == pytest.approx(
            list(expected[stat]), rel=1e-12, abs=1e-12
        )
    assert row["opt_crackling_reason"] == ""
    assert row["opt_crackling_points_compared"] == expected["points"]["compared"] == len(DURATIONS)


def test_g1_differences_use_both_roles_at_gain_one(inputs):
    row = compute(inputs).set_index("compared_role").loc["base"]
    expected = expected_row(inputs, "base", "untrained", 1.0, 1.0)
    for stat in ("b_tot", "delta_b_tot", "chi"):
        got = [
            row[f"diff_{stat}_g1"],
            row[f"diff_{stat}_ci_low_g1"],
            row[f"diff_{stat}_ci_high_g1"],
        ]
        assert got == pytest.approx(list(expected[stat][:3]), rel=1e-12, abs=1e-12)
        assert row[f"{stat}_control_g1"] == pytest.approx(expected[stat][4], rel=1e-12)
    # the control has 5 distinct durations at g = 1 (< 8): no crackling difference, a reason
    assert expected["points"]["control"] == 5
    assert np.isnan(row["diff_crackling_gamma_g1"]) and np.isnan(
        row["diff_crackling_gamma_ci_low_g1"]
    )
    assert row["opt_crackling_reason_g1"] == (
        "control untrained: 5 distinct durations in [3, 64] (< 8)"
    )
    # the point gammas themselves are still reported
    assert row["crackling_gamma_control_g1"] == pytest.approx(
        expected["crackling_gamma"][4], rel=1e-12
    )


def test_t08_is_stamped_validated_sorted_and_byte_identical(inputs):
    first = control.build_t08({**PROVENANCE}, compute(inputs))
    schemas.T08_SCHEMA.validate(first)
    assert list(first.columns[: len(tables.PROVENANCE_COLUMNS)]) == tables.PROVENANCE_COLUMNS
    assert list(first.columns[7 : 7 + len(control.T08_COLUMNS)]) == control.T08_COLUMNS
    assert set(first["stage_id"]) == {"T08_TRAINED_VS_UNTRAINED"}
    assert list(first["model_role"]) == list(first["compared_role"]) == ["base", "instruct"]
    assert list(first["model_id"]) == ["model-base", "model-instruct"]
    again = control.build_t08({**PROVENANCE}, compute(inputs))

    def parquet(frame):
        buffer = io.BytesIO()
        frame.to_parquet(buffer)
        return buffer.getvalue()

    assert parquet(first) == parquet(again)


def test_roles_on_different_windows_are_refused(inputs):
    moved = {**inputs, "base": dict(inputs["base"])}
    windows = moved["base"]["windows"].copy()
    windows.loc[windows["seq_id"] == 20, "seq_id"] = 21
    moved["base"]["windows"] = windows
    with pytest.raises(ReplicationError, match="cover different windows"):
        compute(moved)


def test_a_missing_gain_one_and_a_control_outside_the_roles_are_refused(inputs):
    with pytest.raises(ReplicationError, match="not among the model roles"):
        compute(inputs, roles=["base", "instruct"], control_role="untrained")
    without_one = {**inputs, "base": dict(inputs["base"])}
    conditions = without_one["base"]["conditions"]
    without_one["base"]["conditions"] = conditions[conditions["g"] != 1.0]
    with pytest.raises(ReplicationError, match=r"g = 1\.0 \(expected one\)"):
        compute(without_one)


def test_avalanches_in_unknown_windows_are_refused(inputs):
    stray = {**inputs, "instruct": dict(inputs["instruct"])}
    avalanches = stray["instruct"]["avalanches"].copy()
    at_gstar = avalanches.index[avalanches["cond_id"] == GAINS.index(GSTAR["instruct"])][0]
    avalanches.loc[at_gstar, "seq_id"] = 999
    stray["instruct"]["avalanches"] = avalanches
    with pytest.raises(ReplicationError, match="instruct.avalanches_A"):
        compute(stray)


def _losses(nll_sums, seq_ids=(3, 5, 8)) -> pd.DataFrame:
    """Per-window LM loss of dataset B at g = 1 (and a g = 1.2 row that must be ignored)."""
    rows = [
        {"g": 1.0, "seq_id": s, "nll_sum": float(v), "n_tokens": 10}
        for s, v in zip(seq_ids, nll_sums, strict=True)
    ]
    rows.append({"g": 1.2, "seq_id": seq_ids[0], "nll_sum": 99.0, "n_tokens": 10})
    return pd.DataFrame(rows)


def test_t08_gets_the_paired_perplexity_difference_of_each_compared_role():
    """ppl(base) - ppl(control) at g = 1 on the same B windows, one value per role."""
    t08 = pd.DataFrame({"compared_role": ["base", "base", "instruct"], "x": [1, 2, 3]})
    losses = {
        "base": _losses([20.0, 30.0, 25.0]),
        "instruct": _losses([21.0, 31.0, 26.0]),
        "untrained": _losses([80.0, 90.0, 85.0]),
    }
    out = control.with_paired_perplexity(t08, losses, "untrained", replicates=100)
    expected = np.exp(75.0 / 30.0) - np.exp(255.0 / 30.0)
    assert out.loc[0, "opt_ppl_B_g1_diff"] == pytest.approx(expected)
    assert out.loc[0, "opt_ppl_B_g1_diff"] == out.loc[1, "opt_ppl_B_g1_diff"]
    assert out.loc[0, "opt_ppl_B_g1_diff_ci_high"] < 0  # every window is worse for the control
    assert list(out["x"]) == [1, 2, 3]
    with pytest.raises(ReplicationError, match="different dataset B windows"):
        control.with_paired_perplexity(
            t08, {**losses, "base": _losses([1.0, 2.0, 3.0], (3, 5, 9))}, "untrained", 10
        )
