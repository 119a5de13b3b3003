"""Report section "Training trajectory" (T09): when each statistic separates from step 0.

For a training series, every checkpoint is compared with step 0 (the initialisation) on the
same windows and bootstrap replicates (T09's ``diff_<stat>_vs_step0`` with its paired CI). A
statistic *separates from step 0* at the first step whose CI excludes 0; the section says so
per (spike definition, target rate) for the statistic behind each signature - S1: b_tot,
S2: chi, S3: crackling gamma - and for delta_b_tot (connectivity beyond the per-layer rates),
at g = 1 (the checkpoints as trained) with the answer at each step's own g* next to it, and
whether every later step stays separated. Perplexity on dataset B and ARC accuracy per step
say where the model learned.
"""

from __future__ import annotations

from collections import Counter

import pandas as pd

from ..trajectory import first_separation
from .formatting import ci, key_number, num

#: (T09 statistic, column header) in the section's table.
SEPARATION_STATS = (
    ("b_tot", "S1: b_tot"),
    ("delta_b_tot", "delta_b_tot (perm)"),
    ("chi", "S2: chi"),
    ("crackling_gamma", "S3: crackling gamma"),
)


def _cell(row: pd.Series | None) -> str:
    if row is None or pd.isna(row["first_step"]):
        return "never"
    text = f"step {int(row['first_step']):,}"
    return text if row["stays"] else f"{text} (not at every later step)"


def _first_steps(t09: pd.DataFrame, stat: str, condition: str) -> dict[tuple, pd.Series]:
    table = first_separation(t09, stat, condition)
    return {(r["spike_def_id"], float(r["target_rate"])): r for _, r in table.iterrows()}


def _quality_line(t09: pd.DataFrame) -> str:
    at_g1 = t09[t09["g_condition"] == "g1"].drop_duplicates("step").sort_values("step")
    ppl = "; ".join(
        f"step {int(r['step']):,}: {num(r['ppl_B'])} {ci(r['ppl_B_ci_low'], r['ppl_B_ci_high'])}"
        for _, r in at_g1.iterrows()
    )
    arc = "; ".join(
        f"step {int(r['step']):,}: {num(r['arc_accuracy'], 3)} "
        f"{ci(r['arc_accuracy_ci_low'], r['arc_accuracy_ci_high'])}"
        for _, r in at_g1.iterrows()
    )
    return (
        f"- Perplexity on dataset B at g = 1: {ppl}.\n"
        f"- ARC accuracy at g = 1 (chance 0.25 with four options): {arc}."
    )


def _counts(first: dict[tuple, pd.Series]) -> str:
    counter = Counter(
        "never" if pd.isna(r["first_step"]) else int(r["first_step"]) for r in first.values()
    )
    steps = sorted(k for k in counter if k != "never")
    parts = [f"step {s:,} in {counter[s]}" for s in steps]
    if counter["never"]:
        parts.append(f"never in {counter['never']}")
    return ", ".join(parts)


def trajectory_section(t09: pd.DataFrame | None) -> list[str]:
    """The section's lines; empty when the run is not a training series."""
    if t09 is None or t09.empty:
        return []
    steps = t09.drop_duplicates("model_role").sort_values("step")
    series = ", ".join(
        f"`{r['model_role']}` (step {int(r['step']):,})" for _, r in steps.iterrows()
    )
    lines = [
        "## Training trajectory (T09)",
        "",
        f"The model roles are checkpoints of one training run: {series}. T09 compares every "
        "step with step 0 and with the previous step on the same windows and bootstrap "
        "replicates; a statistic *separates from step 0* at the first step whose paired CI of "
        "step − step 0 excludes 0. Cells give that step at g = 1 (the checkpoints as trained) "
        "and, after the slash, at each step's own g*; *never* means no step separates. Figure "
        "F12 draws the trajectory.",
        "",
        _quality_line(t09),
        "",
    ]
    at_g1 = {stat: _first_steps(t09, stat, "g1") for stat, _ in SEPARATION_STATS}
    at_gstar = {stat: _first_steps(t09, stat, "gstar") for stat, _ in SEPARATION_STATS}
    lines.append("| spike def | r* | " + " | ".join(h for _, h in SEPARATION_STATS) + " |")
    lines.append("|---|---|" + "---|" * len(SEPARATION_STATS))
    for key in sorted(at_g1["b_tot"]):
        cells = [
            f"{_cell(at_g1[stat].get(key))} / {_cell(at_gstar[stat].get(key))}"
            for stat, _ in SEPARATION_STATS
        ]
        lines.append(f"| {key[0]} | {key_number(key[1])} | " + " | ".join(cells) + " |")
    lines.append("")
    n_groups = len(at_g1["b_tot"])
    for stat, header in SEPARATION_STATS:
        lines.append(
            f"- {header} first separates from step 0 (g = 1) at {_counts(at_g1[stat])} of "
            f"{n_groups} (spike definition, rate) groups."
        )
    return lines
