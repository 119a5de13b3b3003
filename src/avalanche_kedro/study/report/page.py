"""The report page: the title, the one-page summary (:mod:`.summary`), the run's identity, then
each detailed section once (:mod:`.sections`, :mod:`.control`, :mod:`.trajectory`, :mod:`.lens`)
with links to its figures; :func:`build_report` assembles them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from .ablations import ablation_finding
from .control import control_role, control_section, specificity_findings
from .falsifiers import generalization_finding, null_finding, rate_finding
from .formatting import cite, wrap
from .grouping import _normalize_tables, groups
from .lens import lens_section, lens_tables
from .sections import (
    RULES,
    group_section,
    replication_section,
    shape_section,
    signature_section,
    tail_section,
)
from .signatures import identification_finding, s1_finding, s2_finding, s3_finding
from .summary import figure_refs, summary_section
from .time_depth import time_depth_finding
from .trajectory import trajectory_section

__all__ = ["RULES", "build_report", "decide_all"]


def _embedded_roles(provenance: Mapping[str, Any]) -> list[str]:
    return [
        role
        for role, model in (provenance.get("models") or {}).items()
        if (model or {}).get("source") == "embedded"
    ]


def _embedded_note(provenance: Mapping[str, Any]) -> list[str]:
    """What the embedded roles are: trained (which step of how many), or random weights."""
    models = provenance.get("models") or {}
    embedded = _embedded_roles(provenance)
    if not embedded:
        return []
    untrained_recipe = [r for r in embedded if models[r].get("training_step") is None]
    trained = [r for r in embedded if r not in untrained_recipe]
    lines = [""]
    if trained:
        steps = ", ".join(
            f"`{r}` = {models[r].get('embedded_recipe')} at step {models[r]['training_step']} of "
            f"{models[r].get('final_training_step')}"
            + (
                " (its initialisation: the untrained control)"
                if models[r]["training_step"] == 0
                else ""
            )
            for r in trained
        )
        lines.append(
            "> **Embedded default.** Tiny Llamas trained by this project on the CPU, on text that "
            f"ships with Python and shares no measured window: {steps}. A few million "
            "parameters trained for about a minute: the absolute numbers say little about large "
            "language models, but the comparison with the untrained control (T08) separates "
            "what training built from what the architecture and the event rate give for free."
        )
    if untrained_recipe:
        lines.append(
            f"> **Random weights.** Role(s) {', '.join(f'`{r}`' for r in untrained_recipe)} are "
            "embedded tiny Llamas with *random* weights (no training): their signatures and "
            "falsifiers say nothing about trained language models; perplexity near the "
            "vocabulary size and chance-level ARC accuracy are expected."
        )
    return lines


def _target_rates(t01: pd.DataFrame | None, calibration: Mapping[str, Any]) -> str:
    """The target rates the run measured, read from T01 (``calibration.target_rates: auto``
    resolves them per role from the model's d_ff), per role where the roles differ."""
    if t01 is not None and {"model_role", "target_rate"} <= set(t01.columns) and len(t01):
        per_role = {
            str(role): sorted({float(r) for r in part["target_rate"]})
            for role, part in t01.groupby("model_role", sort=False)
        }
        if len({tuple(rates) for rates in per_role.values()}) == 1:
            return str(next(iter(per_role.values())))
        return "; ".join(f"{role} {rates}" for role, rates in per_role.items())
    configured = calibration.get("target_rates", "auto")
    if isinstance(configured, str):
        return (
            f"{configured} (expected events per site {calibration.get('expected_events_per_site')})"
        )
    return str([float(r) for r in configured])


def _example_citation(t01: pd.DataFrame) -> str:
    """A citation of this run's first T01 row (an example that exists in the tables below)."""
    columns = ["model_role", "spike_def_id", "target_rate", "g"]
    if t01 is None or t01.empty or not set(columns) <= set(t01.columns):
        return "`T01[role, spike definition, r=target rate, g=gain]`"
    row = t01.sort_values(columns).iloc[0]
    return cite(
        "T01", str(row["model_role"]), str(row["spike_def_id"]), row["target_rate"], g=row["g"]
    )


def _title(provenance: Mapping[str, Any]) -> list[str]:
    return [f"# Run report: activation-event cascades (run `{provenance.get('run_id', 'n/a')}`)"]


def _run_section(
    provenance: Mapping[str, Any], tables: Mapping[str, pd.DataFrame | None]
) -> list[str]:
    """The run's identity: hashes, models, gain grid, rates, windows, how rows are cited."""
    lines = ["## Run", ""]
    lines.append(
        f"- Run `{provenance.get('run_id', 'n/a')}`, config hash "
        f"`{provenance.get('config_hash', 'n/a')}`, code version "
        f"`{provenance.get('code_version', 'n/a')}`."
    )
    t01 = tables["T01"]
    table_run_ids = sorted({str(v) for v in t01["run_id"]}) if "run_id" in t01 else []
    if table_run_ids and table_run_ids != [str(provenance.get("run_id"))]:
        lines.append(
            f"- **Warning**: T01 comes from run(s) {', '.join(table_run_ids)}, not from this "
            f"provenance record."
        )
    devices = provenance.get("devices") or {}
    for role, model in (provenance.get("models") or {}).items():
        device = devices.get(role) or {}
        extra = ", ".join(
            f"{k} {device[k]}" for k in ("n_layers", "d_ff", "device", "dtype") if k in device
        )
        revision = model.get("revision") or model.get("content_sha256") or "n/a"
        lines.append(
            f"- Role `{role}`: model `{model.get('model_id')}` "
            f"(source {model.get('source')}, {model.get('model_type')}, revision/content "
            f"`{str(revision)[:16]}`{', ' + extra if extra else ''})."
        )
    params = provenance.get("parameters") or {}
    windows = params.get("windows") or {}
    calibration = params.get("calibration") or {}
    if params.get("gain_grid"):
        lines.append(
            f"- Gain grid {[float(g) for g in params['gain_grid']]}; target rates "
            f"{_target_rates(tables.get('T01'), calibration)}; spike definitions "
            f"{list(calibration.get('spike_defs', []))}."
        )
    if windows:
        lines.append(
            f"- Windows of T = {windows.get('seq_len')} tokens: {windows.get('n_calibration')} "
            f"calibration and {windows.get('n_raster')} analysis windows of dataset A, "
            f"{windows.get('n_eval_b')} of dataset B."
        )
    lines.append(
        f"- Citations: `T01:12` is row 12 of T01 counted from 0 (`T01.iloc[12]`, the saved order "
        f"of T01_SUMMARY.parquet and its CSV); in prose a row is also named by its key, e.g. "
        f"{_example_citation(t01)} (role, spike definition, target rate, gain)."
    )
    lines += _embedded_note(provenance)
    return lines


#: the figures each detailed section points to
SECTION_FIGURES = {
    "S1": ["F03_BRANCHING_VS_GAIN", "F05_GSTAR_SELECTION", "F08_SPIKE_DEF_ROBUSTNESS"],
    "S2": ["F09_SUSCEPTIBILITY"],
    "a": ["F02_RATE_MATCHING"],
    "b": ["F04_DELTA_B_VS_GAIN", "F10_NULL_COMPARISON"],
    "c": ["F06_GENERALIZATION_B", "F07_ARC_ACCURACY"],
    "T06": ["F11_ABLATIONS"],
    "T09": ["F12_TRAINING_TRAJECTORY"],
    "lens": ["F13_LENS_DEPTH", "F14_COLLAPSE_VS_CASCADE"],
}


def _with_figures(section: list[str], key: str, figures: Mapping[str, str] | None) -> list[str]:
    """A section followed by links to its figures (those this run drew)."""
    links = figure_refs(SECTION_FIGURES.get(key, []), figures)
    return [*section, "", f"Figures: {links}."] if links and section else section


def _figure_definitions(figures: Mapping[str, str] | None) -> list[str]:
    """The targets of the reference-style figure links, relative to the report's folder."""
    return [f"[{figure_id}]: {path}" for figure_id, path in (figures or {}).items()]


def decide_all(tables: Mapping[str, pd.DataFrame | None]) -> dict[tuple, dict[str, Any]]:
    """Every decision of the report, keyed by (role, spike def, target rate)."""
    tables = _normalize_tables(tables)
    out: dict[tuple, dict[str, Any]] = {}
    for group in groups(tables):
        rate, drift = rate_finding(group)
        out[(group.role, group.spike, group.rate)] = {
            "group": group,
            "S1": s1_finding(group),
            "gid": identification_finding(group),
            "S2": s2_finding(group),
            "S3": s3_finding(group),
            "a": rate,
            "drift": drift,
            "b": null_finding(group),
            "c": generalization_finding(group),
            "td": time_depth_finding(group),
            "T06": ablation_finding(group),
        }
    specificity_findings(out, tables.get("T08"))
    return out


def build_report(
    provenance: Mapping[str, Any],
    tables: Mapping[str, pd.DataFrame | None],
    figures: Mapping[str, str] | None = None,
) -> str:
    """The markdown report of one run from its provenance record and tables T01-T11.

    ``tables`` maps ``T01`` ... ``T11`` (or the full names ``T01_SUMMARY`` ...) to DataFrames;
    T04, T07, T08 and T09 may be None or missing (T07 is absent with a single model role, T08
    when no role is the untrained control, T09 when the roles are not a training series); T10
    and T11 (the logit lens) add their section when given. ``figures`` maps each figure id of
    this run to its path relative to the report's folder (the summary and the sections link
    them); None when the figures' location is not known (the summary says so). No line is
    longer than :data:`.formatting.MAX_LINE` characters.
    """
    t10, t11 = lens_tables(tables)
    tables = _normalize_tables(tables)
    findings = decide_all(tables)
    groups_ = [f["group"] for f in findings.values()]
    control = control_role(tables.get("T08"))
    roles = list(provenance.get("roles") or dict.fromkeys(g.role for g in groups_))
    lines = _title(provenance)
    lines += ["", *summary_section(provenance, tables, groups_, findings, control, figures)]
    lines += ["", *_run_section(provenance, tables)]
    sections = [
        (
            "S1",
            signature_section(
                "S1", "S1: branching near 1 at g*", S1_COLUMNS, groups_, findings, control
            ),
        ),
        ("S1", shape_section(tables["T01"])),
        (
            "gid",
            group_section(
                "gid", "Is g* identified?", GID_COLUMNS, groups_, findings, skip_empty=True
            ),
        ),
        (
            "S2",
            signature_section(
                "S2", "S2: susceptibility peak near g*", S2_COLUMNS, groups_, findings, control
            ),
        ),
        (
            "S3",
            signature_section(
                "S3", "S3: crackling relation", S3_COLUMNS, groups_, findings, control
            ),
        ),
        (
            "a",
            group_section(
                "a", "Falsifier (a): rate matching", A_COLUMNS, groups_, findings, with_g=False
            ),
        ),
        (
            "b",
            group_section(
                "b", "Falsifier (b): marginal-preserving nulls", B_COLUMNS, groups_, findings
            ),
        ),
        (
            "td",
            group_section(
                "td",
                "Time vs depth: what the nulls remove along tokens and along layers",
                TD_COLUMNS,
                groups_,
                findings,
            ),
        ),
        (
            "c",
            group_section(
                "c",
                "Falsifier (c): generalization to dataset B and ARC",
                C_COLUMNS,
                groups_,
                findings,
            ),
        ),
        (
            "T06",
            group_section(
                "T06", "Ablations (T06): MLP gain or attention?", T06_COLUMNS, groups_, findings
            ),
        ),
        ("T07", replication_section(tables.get("T07"), roles)),
        ("T08", control_section(groups_, tables.get("T08"))),
        ("T09", trajectory_section(tables.get("T09"))),
        ("lens", lens_section(t10, t11, provenance, control)),
        ("T04", tail_section(groups_)),
    ]
    for key, section in sections:
        if section:
            lines += ["", *_with_figures(section, key, figures)]
    definitions = _figure_definitions(figures)
    if definitions:
        lines += ["", *definitions]
    return "\n".join(wrap(lines)).rstrip() + "\n"


S1_COLUMNS = ["b_tot at g* [CI]", "S1", "b_tot at g = 1 [CI]", "diff b_tot [CI]"]
S2_COLUMNS = ["chi at g* [CI]", "chi max at g (steps)", "S2", "shape", "diff chi [CI]"]
S3_COLUMNS = [
    "gamma [CI]",
    "r²",
    "durations / avalanches",
    "S3",
    "gate failed because",
    "diff gamma [CI]",
]
A_COLUMNS = [
    "(a) in sample",
    "worst err / tol",
    "held-out mean at g*",
    "off target",
    "spread over g",
    "held out",
]
B_COLUMNS = ["(b)", "deciding", "perm", "shift", "tokens", "perm > 0 at", "marginals"]
C_COLUMNS = [
    "(c)",
    "b_tot B: g* vs 1",
    "B rate / r*: g* vs 1",
    "ppl B: g* − 1 [CI]",
    "ARC: g* − 1 [CI]",
    "questions",
]
GID_COLUMNS = ["g*?", "runner-up g", "runner-up margin [CI]", "gains not excluded"]
TD_COLUMNS = [
    "Δb_time perm",
    "Δb_depth perm",
    "Δb_time tokens",
    "Δb_depth tokens",
    "connectivity",
]
T06_COLUMNS = ["b_tot (MLP, g = 1)", "shift of b_tot at g*", "tracks", "top band"]
