"""The report page: header, summary, replication section, and the table names it accepts."""

from __future__ import annotations

import pytest

from avalanche_kedro.study.report import page
from avalanche_kedro.study.report.grouping import TABLE_NAMES
from avalanche_kedro.study.report.page import build_report
from tests.study.report.tables_builder import (
    CONFIG_HASH,
    RATE,
    RUN_ID,
    SPIKE,
    Scenario,
    make_tables,
    provenance,
    render,
)


def test_header_names_the_run_and_the_embedded_caveat():
    text = render()  # an embedded role without a training step: an untrained recipe
    assert text.splitlines()[0] == f"# Run report: activation-event cascades (run `{RUN_ID}`)"
    assert f"- Run `{RUN_ID}`, config hash `{CONFIG_HASH}`" in text
    assert "**Random weights.**" in text and "*random* weights" in text
    hub = build_report(provenance(source="hub"), make_tables({"base": Scenario()}))
    assert "Embedded default" not in hub and "Random weights" not in hub


def test_the_example_citation_is_a_row_of_this_runs_t01():
    tables = make_tables({"base": Scenario()})
    t01 = tables["T01"].sort_values(["model_role", "spike_def_id", "target_rate", "g"])
    first = t01.iloc[0]
    expected = (
        f"`T01[{first['model_role']}, {first['spike_def_id']}, r={float(first['target_rate'])!r}, "
        f"g={float(first['g'])!r}]`"
    )
    assert f"in prose a row is also named by its key, e.g. {expected}" in " ".join(
        build_report(provenance(), tables).split()  # the line is wrapped
    )
    assert "r=0.00037" not in build_report(provenance(), tables)  # the old fixed example


def test_header_says_which_training_step_each_embedded_role_is():
    meta = provenance(roles=("base", "untrained"))
    for role, step in (("base", 250), ("untrained", 0)):
        meta["models"][role].update(
            embedded_recipe="tiny-llama-stdlib", training_step=step, final_training_step=250
        )
    text = build_report(meta, make_tables({"base": Scenario(), "untrained": Scenario()}))
    note = " ".join(text.split("**Embedded default.**")[1].split("\n\n")[0].split())
    assert "`base` = tiny-llama-stdlib at step 250 of 250" in note
    assert "`untrained` = tiny-llama-stdlib at step 0 of 250 (its initialisation" in note.replace(
        "> ", ""
    )
    assert "random" not in note


def test_single_role_says_replication_was_not_run():
    text = render()
    assert "Replication was not run: this run has 1 model role (base)" in text
    assert build_report(provenance(), {**make_tables({"base": Scenario()}), "T07": None})


def test_full_table_names_are_accepted_and_missing_tables_are_an_error():
    frames = make_tables({"base": Scenario()})
    by_name = {TABLE_NAMES[k]: v for k, v in frames.items()}
    assert build_report(provenance(), by_name) == render()
    with pytest.raises(ValueError, match="T06_ABLATIONS"):
        build_report(provenance(), {k: v for k, v in frames.items() if k != "T06"})


def test_the_report_is_deterministic():
    assert render() == render()


def test_decide_all_keys_every_group_and_every_section():
    frames = make_tables({"base": Scenario(), "instruct": Scenario(g_star=1.0)})
    decided = page.decide_all(frames)
    assert list(decided) == [("base", SPIKE, RATE), ("instruct", SPIKE, RATE)]
    base = decided[("base", SPIKE, RATE)]
    assert set(base) == {
        "group",
        "S1",
        "gid",
        "S2",
        "S3",
        "S1_spec",
        "S2_spec",
        "S3_spec",
        "a",
        "drift",
        "b",
        "td",
        "c",
        "T06",
    }
    assert [base[k].decision for k in ("S1", "S2", "S3", "a", "b", "c")] == [
        "present",
        "present",
        "present",
        "does not fire",
        "does not fire",
        "does not fire",
    ]
    assert base["T06"].decision == "MLP gain" and base["drift"].within_tolerance is True
    # no control role in these tables: nothing can be called specific
    assert {base[f"S{i}_spec"].decision for i in (1, 2, 3)} == {"no control"}
    assert decided[("instruct", SPIKE, RATE)]["T06"].decision == "undetermined"
