"""The report's "Where the prediction forms vs where cascades run" section on the hand-made
T10/T11 of ``tests/study/lens_builder.py``: the verdict rule, the descriptive comparison with
the untrained control, and the page that shows the section only with the lens tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.study import report
from avalanche_kedro.study.report import lens as section
from avalanche_kedro.study.report.formatting import wrap
from avalanche_kedro.study.report.page import build_report
from tests.study import lens_builder as b
from tests.study.report.tables_builder import Scenario, make_tables, provenance


def _row(rho=0.4, low=0.3, high=0.5, mean=0.0, p=0.01, defined=True, reason="", role="base"):
    return pd.Series(
        {
            "model_role": role,
            "spearman_rho": rho if defined else np.nan,
            "rho_ci_low": low if defined else np.nan,
            "rho_ci_high": high if defined else np.nan,
            "null_rho_mean": mean,
            "p_value_vs_null": p if defined else np.nan,
            "defined": defined,
            "reason": reason,
        }
    )


@pytest.mark.parametrize(
    ("row", "decision"),
    [
        (_row(), section.ALIGNED),  # p < 0.05 and the CI [0.3, 0.5] excludes the null mean 0
        (_row(rho=-0.4, low=-0.5, high=-0.3), section.ALIGNED),  # below the null counts too
        (_row(p=0.05), section.NOT_DISTINGUISHABLE),  # p must be strictly below 0.05
        (_row(low=-0.1), section.NOT_DISTINGUISHABLE),  # p small but the CI holds the null mean
        (_row(mean=0.3), section.NOT_DISTINGUISHABLE),  # the null mean on a CI bound
        (_row(p=0.3), section.NOT_DISTINGUISHABLE),
        (_row(defined=False, reason="no token has an event"), section.UNDEFINED),
    ],
)
def test_the_verdict_needs_a_small_p_and_a_ci_clear_of_the_null_mean(row, decision):
    assert section.decide_alignment(row)[0] == decision


def test_an_undefined_rho_says_why():
    assert section.decide_alignment(_row(defined=False, reason="no token has an event")) == (
        section.UNDEFINED,
        "undefined: no token has an event",
    )
    assert section.decide_alignment(_row(defined=False))[1] == "undefined: reason not recorded"


def _paired(row: pd.Series, low: float, high: float) -> pd.Series:
    return pd.concat(
        [
            row,
            pd.Series(
                {
                    "diff_rho_vs_control": (low + high) / 2,
                    "diff_rho_ci_low_vs_control": low,
                    "diff_rho_ci_high_vs_control": high,
                }
            ),
        ]
    )


def test_the_control_comparison_is_the_paired_ci_of_the_difference():
    control = _row(rho=0.02, low=-0.1, high=0.12, role="untrained")
    # the paired CI decides, even where the two marginal CIs overlap (or do not)
    assert section.compare_with_control(_paired(_row(low=0.0), 0.05, 0.6), control) == (
        section.DIFFERS
    )
    assert section.compare_with_control(_paired(_row(), -0.01, 0.7), control) == (section.OVERLAPS)
    assert section.compare_with_control(_paired(_row(), -0.6, -0.02), control) == (section.DIFFERS)


def test_without_a_paired_ci_the_control_comparison_says_it_compares_intervals():
    control = _row(rho=0.02, low=-0.1, high=0.12, role="untrained")
    unpaired = " (CIs compared, not paired)"
    assert section.compare_with_control(_row(), control) == section.DIFFERS + unpaired
    assert section.compare_with_control(_row(low=0.12), control) == section.OVERLAPS + unpaired
    assert section.compare_with_control(_row(rho=-0.3, low=-0.4, high=-0.2), control) == (
        section.DIFFERS + unpaired
    )
    undefined = _row(defined=False, reason="collapse layer constant", role="untrained")
    assert section.compare_with_control(_row(), undefined) == (
        "not comparable: rho of `untrained` is undefined (collapse layer constant)"
    )
    assert section.compare_with_control(_row(), None) == "not comparable: no control row"


@pytest.fixture(scope="module")
def text() -> str:
    lines = section.lens_section(b.make_t10(), b.make_t11(), b.provenance(), "untrained")
    return "\n".join(lines)


def _line(text: str, start: str) -> str:
    found = [line for line in text.splitlines() if line.startswith(start)]
    assert len(found) == 1, (start, found)
    return found[0]


def test_no_lens_tables_no_section():
    assert section.lens_section(None, None) == []
    assert section.lens_tables({"T01": 1}) == (None, None)
    assert section.lens_tables({"T10_LENS": 1, "T11_COLLAPSE_VS_CASCADE": 2}) == (1, 2)


def test_each_row_gives_the_entropy_drop_collapse_rho_null_and_verdict(text):
    assert text.startswith(section.TITLE)
    # base at g = 1: entropy falls most into layer 2 (6.0, 5.5, 3.0, 2.5: by 2.5 nats); mean
    # collapse layer 92/48 = 1.917, mean depth 111/48 = 2.312
    assert _line(text, "| base | SPIKE_ONE_SIDED_POS | 0.002 | g = 1 | 1.0 |") == (
        "| base | SPIKE_ONE_SIDED_POS | 0.002 | g = 1 | 1.0 | 2 (−2.5 nats) | 1.92 | 2.31 | "
        "0.45 [0.3, 0.58] | 0.02 [-0.08, 0.11] | 0.002 | **aligned** | T11:1 |"
    )
    assert _line(text, "| instruct | SPIKE_TWO_SIDED_ABS | 0.004 | g* | 0.9 |").endswith(
        "| 0.9 | 1 (−2 nats) | 1.92 | 1.62 | 0.08 [-0.03, 0.19] | 0 [-0.1, 0.1] | 0.22 | "
        "not distinguishable | T11:23 |"
    )
    cited = b.make_t11().iloc[23]  # the row `T11:23` names
    assert (cited["model_role"], cited["spike_def_id"], cited["g_condition"]) == (
        "instruct",
        "SPIKE_TWO_SIDED_ABS",
        "gstar",
    )
    assert "| n/a | n/a | n/a | undefined: collapse layer constant | T11:" in _line(
        text, "| untrained | SPIKE_ONE_SIDED_POS | 0.001 | g = 1 | 1.0 |"
    )
    assert text.count("| **aligned** |") == 12  # base, every row


def test_each_role_gets_a_summary_line(text):
    assert _line(text, "- `base`:") == (
        "- `base`: the mean lens entropy falls most into layer 2 (−2.5 nats) at g = 1 and the "
        "mean collapse layer is 1.92 (`T11[base, SPIKE_ONE_SIDED_POS, r=0.001, g1]`); collapse "
        "layer vs cascade depth is aligned beyond the null in 12 of 12 (spike definition, rate, "
        "g condition) rows."
    )
    assert "is not distinguishable from it in 6, undefined in 6 of 12" in _line(
        text, "- `untrained`:"
    )


def test_trained_roles_are_set_against_the_untrained_control_by_a_paired_ci(text):
    assert "### Against the untrained control `untrained`" in text
    assert "CI of the paired difference" in text and "not paired" not in text
    # replicates spread evenly over each CI: the paired differences run from
    # 0.36 - (-0.1) = 0.46 to 0.62 - 0.15 = 0.47, so the paired CI is about [0.46, 0.47]
    assert _line(text, "| base | SPIKE_ONE_SIDED_POS | 0.002 | g* | 0.5 [") == (
        "| base | SPIKE_ONE_SIDED_POS | 0.002 | g* | 0.5 [0.36, 0.62] | 0.03 [-0.1, 0.15] | "
        "0.47 [0.46, 0.47] | differs from the control |"
    )
    # the marginal CIs [-0.03, 0.19] and [-0.1, 0.15] overlap, but replicate by replicate
    # instruct stays above the control: the differences run from -0.03 - (-0.1) = 0.07 to
    # 0.19 - 0.15 = 0.04, so the paired CI [0.04, 0.07] excludes 0 (what pairing buys)
    assert _line(text, "| instruct | SPIKE_ONE_SIDED_POS | 0.002 | g* | 0.08 [").endswith(
        "| 0.05 [0.0407, 0.0693] | differs from the control |"
    )
    assert _line(text, "- `base` vs `untrained`:") == (
        "- `base` vs `untrained`: not comparable in 6, differs from the control in 6 of 12 rows."
    )


def test_without_an_untrained_role_the_section_says_it_cannot_compare():
    roles = ["base", "instruct"]
    hub = {**b.provenance(roles)}
    lines = section.lens_section(b.make_t10(roles), b.make_t11(roles), hub, None)
    assert lines[-1].startswith("No untrained control in this run")
    assert not any(line.startswith("### Against") for line in lines)
    # a role recorded at training step 0 is the control even without replication.control_role
    hub["models"]["instruct"] = {"model_id": "tiny-instruct", "training_step": 0}
    lines = section.lens_section(b.make_t10(roles), b.make_t11(roles), hub, None)
    assert "### Against the untrained control `instruct`" in lines


def test_the_page_shows_the_section_only_with_the_lens_tables():
    roles = ("base", "instruct")
    frames = make_tables({role: Scenario() for role in roles})
    meta = provenance(roles, source="hub")
    without = build_report(meta, frames)
    assert section.TITLE not in without
    t10, t11 = b.make_t10(list(roles)), b.make_t11(list(roles))
    with_lens = build_report(meta, {**frames, "T10_LENS": t10, "T11": t11})
    lens_text = "\n".join(wrap(section.lens_section(t10, t11, meta, None)))  # as on the page
    assert "No untrained control in this run" in lens_text
    # the section sits after the trajectory section and before the tail fits, nothing else moves
    assert with_lens.index(section.TITLE) < with_lens.index("## Tail fits")
    assert with_lens.replace("\n\n" + lens_text, "", 1) == without
    assert report.lens_section is section.lens_section
