"""Report section "Replication" (T07): paired differences between model roles."""

from __future__ import annotations

import pandas as pd

from .decisions import decide_paired_difference
from .formatting import ci, key_number, num, value_ci
from .grouping import Finding


def replication_findings(t07: pd.DataFrame) -> list[Finding]:
    out = []
    for row in t07.sort_values(
        ["compared_role", "spike_def_id", "target_rate"], kind="stable"
    ).itertuples():
        position = row.Index
        where = (
            f"`T07[{row.compared_role} vs {row.reference_role}, {row.spike_def_id}, "
            f"r={key_number(row.target_rate)}]`"
        )
        d_b = decide_paired_difference(
            row.diff_delta_b_tot, row.diff_delta_b_tot_ci_low, row.diff_delta_b_tot_ci_high
        )
        d_chi = decide_paired_difference(row.diff_chi, row.diff_chi_ci_low, row.diff_chi_ci_high)
        text = (
            f"{row.compared_role} − {row.reference_role}, {row.spike_def_id}, "
            f"r = {key_number(row.target_rate)} (g* {key_number(row.g_star_compared)} vs "
            f"{key_number(row.g_star_reference)}): diff delta_b_tot = {num(row.diff_delta_b_tot)}, "
            f"CI {ci(row.diff_delta_b_tot_ci_low, row.diff_delta_b_tot_ci_high)} "
            f"(**{d_b}**); diff chi = {num(row.diff_chi)}, "
            f"CI {ci(row.diff_chi_ci_low, row.diff_chi_ci_high)} (**{d_chi}**) ({where})."
        )
        cells = (
            f"{row.compared_role} − {row.reference_role}",
            row.spike_def_id,
            key_number(row.target_rate),
            f"{key_number(row.g_star_compared)} vs {key_number(row.g_star_reference)}",
            value_ci(
                row.diff_delta_b_tot, row.diff_delta_b_tot_ci_low, row.diff_delta_b_tot_ci_high
            ),
            d_b,
            value_ci(row.diff_chi, row.diff_chi_ci_low, row.diff_chi_ci_high),
            d_chi,
            f"T07:{position}",
        )
        out.append(Finding("T07", d_b, text, cells))
    return out
