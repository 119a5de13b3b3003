"""The report page: header, the decision rules in words, the summary, one section per group and
the descriptive lines (shape of the curves, tail fits); :func:`build_report` assembles them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from .ablations import ablation_finding
from .control import (
    NO_CONTROL_TEXT,
    control_role,
    control_section,
    specificity_findings,
    specificity_label,
)
from .decisions import FIRES, PRESENT, SPECIFIC, decide_s2
from .falsifiers import generalization_finding, null_finding, rate_finding
from .formatting import _finite, cite, key_number, num
from .grouping import G_MATCH_ATOL, Finding, Group, _get, _normalize_tables, _one, groups
from .lens import lens_section, lens_tables
from .replication import replication_findings
from .signatures import s1_finding, s2_finding, s3_finding
from .trajectory import trajectory_section

RULES = """\
- **S1 branching near 1** — at g* (the T01 row with `opt_is_gstar`), *present* when the b_tot
  bootstrap CI contains 1 (bounds included); otherwise *absent*, with the gap from 1 to the
  nearer CI bound. The g = 1 row is quoted next to it.
- **S2 chi peak near g*** — over the gain grid of T01, the gain of maximal chi (ties: the
  smaller gain). *Present* when it is g* or a grid neighbour of g*, *absent* otherwise. A
  maximum at the edge of the grid is flagged: it is not an interior peak.
- **S3 crackling** — *present* when the T05 gate passed at g* (finite gamma, ≥ 8 distinct
  durations, CI width ≤ 0.5); *absent* otherwise, with the gate's reason.
- **Specific (T08)** — a present signature is *specific* to a trained role only when it
  separates from the untrained control, on the paired T08 row (role − control, same windows and
  bootstrap replicates, each at its own g*): S1 when the CI of diff_b_tot excludes 0; S2 when
  the CI of diff_chi excludes 0; S3 when the control's own S3 verdict is *absent* or the CI of
  diff_crackling_gamma excludes 0. Otherwise it is *present but not specific* (the control
  shows it too, or it is not separated); an absent signature stays *absent*; the control role
  itself is marked *control*. Without a control role in the run nothing can be called specific.
- **(a) rate matching** — *fires* when an in-sample largest |achieved − r*| (T01
  `achieved_rate_max_abs_err`) exceeds the largest per-layer tolerance
  (`opt_rate_match_tol_abs_max`). A saved run cannot show this: the events pipeline stops on any
  cell outside its tolerance. The held-out (analysis-slice) rate is reported, not gated; it is
  flagged when its distance from the target or its spread across gains exceeds `rel_tol`.
- **(b) null** — judged at g* against the strictest of three nulls: the within-layer time
  permutation, the within-layer circular shift and the input token shuffle. It *fires* when the
  delta_b_tot CI of ANY recorded null contains 0 (explained by the rates) or lies below 0, and
  *does not fire* only when every recorded null's CI lies above 0. The sentence names the
  deciding null (the recorded one with the smallest CI lower bound) and lists all three; a null
  not recorded at that gain counts for nothing, and with none recorded (b) is *undetermined*.
- **(c) generalization** — *fires* when at g* the perplexity CI on dataset B lies entirely
  above the g = 1 CI, or the ARC accuracy CI lies entirely below the g = 1 CI. Whether b_tot on
  B is nearer to 1 at g* is reported. With g* = 1 the test is empty.
- **Ablations (T06)** — shift of b_tot from MLP_GLOBAL at g = 1 to each intervention at g*;
  the effect *tracks the MLP gain* when |shift(MLP_GLOBAL)| ≥ |shift(ATTN_GLOBAL)|, else
  *attention*; the MLP band with the largest |shift| is named.
- **Replication (T07, T08)** — a paired difference between roles *differs* when its CI excludes
  0."""


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


def _header(provenance: Mapping[str, Any], tables: Mapping[str, pd.DataFrame | None]) -> list[str]:
    lines = ["# Run report: activation-event cascades", ""]
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
        f"- A citation such as {_example_citation(t01)} names one row "
        "of that table in this run: model role, spike definition, target rate and gain "
        "(`g1`/`gstar` in T02 and T03, plus the intervention in T06)."
    )
    lines += _embedded_note(provenance)
    return lines


def _summary(
    groups_: list[Group], findings: dict[tuple, dict[str, Finding]], control: str | None
) -> list[str]:
    lines = [
        "## Summary",
        "",
        "| role | spike def | rate | g* | S1 | S2 | S3 | specific vs control | (a) in-sample | "
        "held-out rate | (b) null | (c) generalization | T06 tracks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for group in groups_:
        f = findings[(group.role, group.spike, group.rate)]
        held = {True: "within tol", False: "drifts", None: "n/a"}[f["drift"].within_tolerance]
        lines.append(
            f"| {group.role} | {group.spike} | {key_number(group.rate)} | "
            f"{key_number(group.g_star)} | {f['S1'].decision} | {f['S2'].decision} | "
            f"{f['S3'].decision} | {specificity_label(f)} | {f['a'].decision} | {held} | "
            f"{f['b'].decision} | "
            f"{f['c'].decision} | {f['T06'].decision if f.get('T06') else 'n/a'} |"
        )
    n = len(groups_)

    def count(key, value):
        return sum(findings[(g.role, g.spike, g.rate)][key].decision == value for g in groups_)

    lines += [
        "",
        f"Over {n} (role, spike definition, target rate) groups: S1 present in "
        f"{count('S1', PRESENT)}, S2 present in {count('S2', PRESENT)}, S3 present in "
        f"{count('S3', PRESENT)}; falsifier (a) fires in {count('a', FIRES)}, (b) fires in "
        f"{count('b', FIRES)}, (c) fires in {count('c', FIRES)}. Each row's evidence is in "
        "the sections below.",
    ]
    trained = [g for g in groups_ if g.role != control]
    if control is None:
        lines += ["", f"Specificity: {NO_CONTROL_TEXT}."]
    else:
        lines += [
            "",
            f"Against the untrained control `{control}` (T08), over {len(trained)} groups of "
            f"the other roles: S1 specific in {count('S1_spec', SPECIFIC)}, S2 specific in "
            f"{count('S2_spec', SPECIFIC)}, S3 specific in {count('S3_spec', SPECIFIC)}.",
        ]
    edge_gstar = sum(g.g_star in (g.t01["g"].min(), g.t01["g"].max()) for g in groups_)
    s2 = [decide_s2(g.t01["g"].to_list(), g.t01["chi"].to_list(), g.g_star) for g in groups_]
    edge_chi = sum(d.at_edge for d in s2)
    monotone = sum(d.monotone is not None for d in s2)
    drifting = [
        (findings[(g.role, g.spike, g.rate)]["drift"], g)
        for g in groups_
        if findings[(g.role, g.spike, g.rate)]["drift"].within_tolerance is False
    ]
    notes = []
    if edge_gstar:
        notes.append(
            f"g* is an end of the gain grid in {edge_gstar} of {n} groups: there the grid does "
            "not bracket the gain with b_tot nearest 1."
        )
    if edge_chi:
        notes.append(
            f"chi is largest at an end of the grid in {edge_chi} of {n} groups (monotone in g "
            f"over the whole grid in {monotone}): no interior susceptibility peak there."
        )
    if drifting:
        worst, worst_group = max(drifting, key=lambda item: item[0].level)
        spread, spread_group = max(drifting, key=lambda item: item[0].spread)
        notes.append(
            f"**Held-out rates are not matched** in {len(drifting)} of {n} groups: on the "
            f"analysis slice the mean rate is off the target by up to "
            f"{num(100 * worst.level, 3)} % ({worst_group.label}) and moves by up to "
            f"{num(100 * spread.spread, 3)} % of the target across gains ({spread_group.label}), "
            "so trends of b_tot and chi with g on that slice can partly be rate effects "
            "(section (a) cites the T01 rows)."
        )
    if notes:
        lines += ["", *[f"- {note}" for note in notes]]
    return lines


def _per_group_section(
    title: str, intro: str, groups_: list[Group], findings, key: str
) -> list[str]:
    """One line per group; a signature's line ends with its specificity sentence (T08)."""
    lines = [f"## {title}", "", intro, ""] if intro else [f"## {title}", ""]
    for group in groups_:
        decided = findings[(group.role, group.spike, group.rate)]
        finding = decided.get(key)
        if finding is not None:
            extra = decided.get(f"{key}_spec")
            tail = f" {extra.sentence}" if extra is not None and extra.sentence else ""
            lines.append(f"- **{group.label}.** {finding.sentence}{tail}")
    return lines


def _shape_lines(groups_: list[Group], t01: pd.DataFrame) -> list[str]:
    """How much b_tot moves with g versus with the target rate (SPEC §13's shape)."""
    lines = []
    for (role, spike), part in t01.groupby(["model_role", "spike_def_id"], sort=True):
        over_g = part.groupby("target_rate")["b_tot"].agg(lambda s: s.max() - s.min())
        at_one = part[np.isclose(part["g"].astype(float), 1.0, rtol=0, atol=G_MATCH_ATOL)]
        if at_one.empty or over_g.empty:
            continue
        over_r = at_one["b_tot"].max() - at_one["b_tot"].min()
        lines.append(
            f"- {role}, {spike}: b_tot spans at most {num(over_g.max())} across the gain grid at "
            f"a fixed rate, and {num(over_r)} across target rates at g = 1 "
            f"(`T01[{role}, {spike}, every r, every g]`)."
        )
    return lines


def _tail_lines(groups_: list[Group]) -> list[str]:
    lines = [
        "## Tail fits (T04, descriptive only)",
        "",
        "Heavy tails are not evidence of criticality; these fits describe the size distribution "
        "at g* and decide nothing. LLR > 0 favours the power law.",
        "",
        "| row | available | n_tail | alpha | LLR vs lognormal (p) | LLR vs exponential (p) |",
        "|---|---|---|---|---|---|",
    ]
    any_row = False
    for group in groups_:
        row = _one(group.t04, g=group.g_star)
        if row is None:
            continue
        any_row = True
        available = bool(row.get("opt_available", True))
        lines.append(
            f"| {group.cite('T04', g=group.g_star)} | {'yes' if available else 'no'} | "
            f"{int(_get(row, 'n_tail')) if _finite(_get(row, 'n_tail')) else 'n/a'} | "
            f"{num(_get(row, 'alpha_powerlaw'))} | {num(_get(row, 'llr_powerlaw_vs_lognormal'))} "
            f"({num(_get(row, 'opt_p_powerlaw_vs_lognormal'), 2)}) | "
            f"{num(_get(row, 'llr_powerlaw_vs_exponential'))} "
            f"({num(_get(row, 'opt_p_powerlaw_vs_exponential'), 2)}) |"
        )
    return lines if any_row else []


def decide_all(tables: Mapping[str, pd.DataFrame | None]) -> dict[tuple, dict[str, Any]]:
    """Every decision of the report, keyed by (role, spike def, target rate)."""
    tables = _normalize_tables(tables)
    out: dict[tuple, dict[str, Any]] = {}
    for group in groups(tables):
        rate, drift = rate_finding(group)
        out[(group.role, group.spike, group.rate)] = {
            "group": group,
            "S1": s1_finding(group),
            "S2": s2_finding(group),
            "S3": s3_finding(group),
            "a": rate,
            "drift": drift,
            "b": null_finding(group),
            "c": generalization_finding(group),
            "T06": ablation_finding(group),
        }
    specificity_findings(out, tables.get("T08"))
    return out


def build_report(provenance: Mapping[str, Any], tables: Mapping[str, pd.DataFrame | None]) -> str:
    """The markdown report of one run from its provenance record and tables T01-T11.

    ``tables`` maps ``T01`` ... ``T09`` (or the full names ``T01_SUMMARY`` ...) to DataFrames;
    T04, T07, T08 and T09 may be None or missing (T07 is absent with a single model role, T08
    when no role is the untrained control, T09 when the roles are not a training series); T10
    and T11 (the logit lens) add their section when given.
    """
    t10, t11 = lens_tables(tables)
    tables = _normalize_tables(tables)
    findings = decide_all(tables)
    groups_ = [f["group"] for f in findings.values()]
    lines = _header(provenance, tables)
    lines += ["", *_summary(groups_, findings, control_role(tables.get("T08")))]
    lines += ["", "## Decision rules", "", RULES]
    lines += [""] + _per_group_section(
        "S1: branching near 1 at g*",
        "g* is the grid gain with b_tot nearest 1 on the dataset A analysis slice (SPEC §8).",
        groups_,
        findings,
        "S1",
    )
    shape = _shape_lines(groups_, tables["T01"])
    if shape:
        lines += ["", "How b_tot moves with the gain versus with the target rate:", "", *shape]
    lines += [""] + _per_group_section(
        "S2: susceptibility peak near g*",
        "chi = var(Y)/mean(Y) of the per-window event count, over the gain grid.",
        groups_,
        findings,
        "S2",
    )
    lines += [""] + _per_group_section(
        "S3: crackling relation",
        "mean size vs token span over 3 ≤ D ≤ 64, window-bootstrap CI (SPEC §6).",
        groups_,
        findings,
        "S3",
    )
    lines += [""] + _per_group_section(
        "Falsifier (a): rate matching",
        "Thresholds are fitted on the calibration slice at every gain; metrics are measured on "
        "the held-out analysis slice. The events pipeline stops the run when any in-sample "
        "(gain, layer, spike def, rate) cell misses its tolerance, so in a saved run (a) cannot "
        "fire in sample; the held-out rates are reported, not gated.",
        groups_,
        findings,
        "a",
    )
    lines += [""] + _per_group_section(
        "Falsifier (b): marginal-preserving nulls",
        "delta_b_tot = b_tot(real) − b_tot(null) with paired window-bootstrap CIs; the "
        "within-layer time permutation is the primary null.",
        groups_,
        findings,
        "b",
    )
    lines += [""] + _per_group_section(
        "Falsifier (c): generalization to dataset B and ARC",
        "g* is frozen on dataset A and applied unchanged to dataset B (with A's thresholds) and "
        "to ARC multiple choice.",
        groups_,
        findings,
        "c",
    )
    lines += [""] + _per_group_section(
        "Ablations (T06): MLP gain or attention?",
        "Each intervention is rate-matched separately; b_tot has no CI in T06, delta_b_tot "
        "against the permutation null does.",
        groups_,
        findings,
        "T06",
    )
    lines += ["", "## Replication (T07)", ""]
    t07 = tables.get("T07")
    roles = sorted({g.role for g in groups_})
    if t07 is None or t07.empty:
        lines.append(
            f"Replication was not run: this run has {len(roles)} model role"
            f"{'s' if len(roles) != 1 else ''} ({', '.join(roles)}); T07 needs at least two."
        )
    else:
        reps = replication_findings(t07)
        differs = sum(f.decision == "differs" for f in reps)
        lines.append(
            f"Paired differences at each role's own g*, same windows and bootstrap indices. "
            f"delta_b_tot differs between roles in {differs} of {len(reps)} rows."
        )
        lines.append("")
        lines += [f"- {f.sentence}" for f in reps]
    lines += ["", *control_section(groups_, tables.get("T08"))]
    trajectory = trajectory_section(tables.get("T09"))
    if trajectory:
        lines += ["", *trajectory]
    lens = lens_section(t10, t11, provenance, control_role(tables.get("T08")))
    if lens:
        lines += ["", *lens]
    tail = _tail_lines(groups_)
    if tail:
        lines += ["", *tail]
    return "\n".join(lines).rstrip() + "\n"
