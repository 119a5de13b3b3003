"""The run report: every signature and falsifier of the study, decided from the paper tables.

:func:`build_report` turns ``run_provenance`` and the tables T01-T11 of one run into a
markdown page: a one-page summary (:mod:`.summary`), then each section once, its rule in a
paragraph and one table row per group citing the rows behind it (``T01:12``,
:mod:`.formatting`; :mod:`.sections`); :func:`render_html` makes the HTML page (:mod:`.html`). The decision rules are pure functions of numbers in :mod:`.decisions`;
each report section decides its findings in its own module (:mod:`.signatures`,
:mod:`.falsifiers`, :mod:`.ablations`, :mod:`.replication`, :mod:`.control` for T08 and the
specificity of the signatures against the untrained control, :mod:`.trajectory` for T09,
:mod:`.lens` for the logit lens next to the cascades in T10/T11) on the per-group view of
:mod:`.grouping`, and :mod:`.page` assembles the page. No Kedro import: a notebook can call it
on loaded tables.
"""

from __future__ import annotations

from .ablations import ablation_finding
from .control import (
    NO_CONTROL_TEXT,
    control_section,
    specificity_findings,
    specificity_label,
)
from .decisions import (
    ABSENT,
    CONTROL,
    DOES_NOT_FIRE,
    FIRES,
    NO_CONTROL,
    NOT_SPECIFIC,
    NULL_BELOW_NULL,
    NULL_BEYOND_RATES,
    NULL_EXPLAINED_BY_RATES,
    NULL_NOT_RECORDED,
    PRESENT,
    SPECIFIC,
    TRACKS_ATTENTION,
    TRACKS_MLP,
    UNDETERMINED,
    AblationDecision,
    GeneralizationDecision,
    HeldOutDrift,
    NullFalsifierDecision,
    RateDecision,
    S1Decision,
    S2Decision,
    SpecificityDecision,
    crackling_gate_reason,
    decide_ablation,
    decide_generalization,
    decide_null,
    decide_null_falsifier,
    decide_paired_difference,
    decide_rate_matching,
    decide_s1,
    decide_s2,
    decide_s3,
    decide_specificity,
    held_out_drift,
    null_falsifier,
)
from .falsifiers import generalization_finding, null_finding, rate_finding
from .formatting import MAX_LINE, ci, cite, key_number, num, ref, signed
from .grouping import G_MATCH_ATOL, GROUP_KEYS, REQUIRED_TABLES, TABLE_NAMES, Finding, Group, groups
from .html import render_html
from .lens import compare_with_control, decide_alignment, lens_section
from .page import RULES, build_report, decide_all
from .replication import replication_findings
from .signatures import s1_finding, s2_finding, s3_finding
from .summary import FIGURE_CAPTIONS, SUMMARY_MAX_LINES, summary_section

__all__ = [
    "ABSENT",
    "AblationDecision",
    "CONTROL",
    "DOES_NOT_FIRE",
    "FIRES",
    "Finding",
    "FIGURE_CAPTIONS",
    "GROUP_KEYS",
    "G_MATCH_ATOL",
    "GeneralizationDecision",
    "Group",
    "HeldOutDrift",
    "MAX_LINE",
    "NO_CONTROL",
    "NO_CONTROL_TEXT",
    "NOT_SPECIFIC",
    "NULL_BELOW_NULL",
    "NULL_BEYOND_RATES",
    "NULL_EXPLAINED_BY_RATES",
    "NULL_NOT_RECORDED",
    "NullFalsifierDecision",
    "PRESENT",
    "REQUIRED_TABLES",
    "RULES",
    "RateDecision",
    "S1Decision",
    "S2Decision",
    "SPECIFIC",
    "SUMMARY_MAX_LINES",
    "SpecificityDecision",
    "TABLE_NAMES",
    "TRACKS_ATTENTION",
    "TRACKS_MLP",
    "UNDETERMINED",
    "ablation_finding",
    "build_report",
    "ci",
    "cite",
    "compare_with_control",
    "control_section",
    "crackling_gate_reason",
    "decide_ablation",
    "decide_alignment",
    "decide_all",
    "decide_generalization",
    "decide_null",
    "decide_null_falsifier",
    "decide_paired_difference",
    "decide_rate_matching",
    "decide_s1",
    "decide_s2",
    "decide_s3",
    "decide_specificity",
    "generalization_finding",
    "groups",
    "held_out_drift",
    "key_number",
    "lens_section",
    "null_falsifier",
    "null_finding",
    "num",
    "rate_finding",
    "ref",
    "render_html",
    "replication_findings",
    "s1_finding",
    "s2_finding",
    "s3_finding",
    "signed",
    "specificity_findings",
    "specificity_label",
    "summary_section",
]
