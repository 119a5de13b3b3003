"""A synthetic T09_TRAINING_TRAJECTORY (three steps, two spike definitions, two rates, both gain
conditions) that passes the T09 schema, for the figure and report tests of the training series.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from avalanche_kedro.study import control, tables, trajectory

RUN_ID = "run-0123456789abcdef"
CONFIG_HASH = "c" * 64
STEPS = {"step0": 0, "step14": 14, "step200": 200}
SPIKES = ["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"]
RATES = [0.001, 0.004]


def provenance() -> dict:
    return {
        "run_id": RUN_ID,
        "config_hash": CONFIG_HASH,
        "code_version": "no_git_metadata",
        "roles": list(STEPS),
        "models": {role: {"model_id": f"tiny@{role}"} for role in STEPS},
    }


def make_t09(separate_b_tot_at: int = 14, gate_fails_at: int = 0) -> pd.DataFrame:
    """b_tot moves away from step 0 from ``separate_b_tot_at`` on (CI excludes 0), chi never
    does, the crackling gate fails at ``gate_fails_at``; perplexity falls with training."""
    rows = []
    roles = list(STEPS)
    for (i, role), spike, rate, condition in itertools.product(
        enumerate(roles), SPIKES, RATES, ("g1", "gstar")
    ):
        step = STEPS[role]
        b_tot = 0.5 + 0.1 * i + (0.2 if rate == RATES[1] else 0.0)
        row = {
            "run_id": RUN_ID,
            "stage_id": tables.TABLE_IDS["T09"],
            "model_id": f"tiny@{role}",
            "model_role": role,
            "dataset_role": "A",
            "config_hash": CONFIG_HASH,
            "code_version": "no_git_metadata",
            "step": step,
            "spike_def_id": spike,
            "target_rate": rate,
            "g_condition": condition,
            "g": 1.0 if condition == "g1" else 1.1,
            "g_star": 1.1,
            "b_time": b_tot / 2,
            "b_depth": b_tot / 2,
            "b_tot": b_tot,
            "b_tot_ci_low": b_tot - 0.02,
            "b_tot_ci_high": b_tot + 0.02,
            "delta_b_tot_perm": 0.1 * i,
            "delta_b_tot_perm_ci_low": 0.1 * i - 0.01,
            "delta_b_tot_perm_ci_high": 0.1 * i + 0.01,
            "delta_b_tot_shift": 0.05 * i,
            "delta_b_tot_shift_ci_low": 0.05 * i - 0.02,
            "delta_b_tot_shift_ci_high": 0.05 * i + 0.02,
            "chi": 3.0 + i,
            "chi_ci_low": 1.0,
            "chi_ci_high": 9.0,
            "crackling_gamma": 1.2 + 0.1 * i,
            "crackling_ci_low": 1.0 + 0.1 * i,
            "crackling_ci_high": 1.4 + 0.1 * i,
            "crackling_pass": step != gate_fails_at,
            "heldout_rate_ratio": 1.3 - 0.1 * i,
            "ppl_B": 4000.0 / (1 + 4 * i),
            "ppl_B_ci_low": 3900.0 / (1 + 4 * i),
            "ppl_B_ci_high": 4100.0 / (1 + 4 * i),
            "arc_accuracy": 0.25,
            "arc_accuracy_ci_low": 0.1,
            "arc_accuracy_ci_high": 0.4,
            "reference_step": 0,
            "previous_step": np.nan if i == 0 else float(STEPS[roles[i - 1]]),
            "n_sequences": 16,
            "bootstrap_replicates": 100,
        }
        for reference in trajectory.REFERENCES:
            for stat in control.STATS:
                base = f"diff_{stat}_vs_{reference}"
                if i == 0:
                    row[base] = row[f"{base}_ci_low"] = row[f"{base}_ci_high"] = np.nan
                    continue
                diff = {
                    "b_tot": 0.1 * i,
                    "chi": 1.0 * i,
                    "delta_b_tot": 0.1 * i,
                    "crackling_gamma": 0.1 * i,
                }[stat]
                if reference == "previous" and i > 1:
                    diff = {"b_tot": 0.1, "chi": 1.0, "delta_b_tot": 0.1}.get(stat, 0.1)
                separated = stat == "b_tot" and step >= separate_b_tot_at
                half = 0.05 if separated else abs(diff) + 0.5
                row[base] = diff
                row[f"{base}_ci_low"] = diff - half
                row[f"{base}_ci_high"] = diff + half
        rows.append(row)
    frame = pd.DataFrame(rows)
    ordered = [*tables.PROVENANCE_COLUMNS, *trajectory.T09_COLUMNS]
    return (
        frame[ordered]
        .sort_values(["step", "spike_def_id", "target_rate", "g_condition"], kind="stable")
        .reset_index(drop=True)
    )
