"""The report's view of the tables: one Group per (role, spike def, target rate) with its g*
and its rows of every table, on tiny hand-built T01/T02 frames."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from avalanche_kedro.study.report.grouping import (
    Finding,
    _get,
    _normalize_tables,
    _one,
    groups,
)

SPIKE = "SPIKE_ONE_SIDED_POS"


def _t01() -> pd.DataFrame:
    """Two roles at one rate, base also at a second rate; rows deliberately out of order."""
    rows = [
        ("instruct", 1e-4, 1.1, False),
        ("base", 2e-4, 1.0, True),
        ("base", 1e-4, 1.1, False),
        ("instruct", 1e-4, 0.9, True),
        ("base", 1e-4, 0.9, False),
        ("base", 1e-4, 1.0, True),
        ("base", 2e-4, 0.9, False),
        ("instruct", 1e-4, 1.0, False),
    ]
    return pd.DataFrame(
        {
            "model_role": [r[0] for r in rows],
            "spike_def_id": SPIKE,
            "target_rate": [r[1] for r in rows],
            "g": [r[2] for r in rows],
            "opt_is_gstar": [r[3] for r in rows],
            "chi": range(len(rows)),
        }
    )


def _t02() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model_role": ["base", "base", "instruct", "instruct"],
            "spike_def_id": SPIKE,
            "target_rate": [1e-4, 1e-4, 1e-4 * (1 + 1e-15), 1e-4],
            "g_condition": ["g1", "gstar", "gstar", "g1"],
            "g": [1.0, 1.0, 0.9, 1.0],
            "ppl": [20.0, 20.0, 21.0, 22.0],
        }
    )


def test_groups_in_key_order_with_their_gstar_and_rows():
    found = groups({"T01": _t01(), "T02": _t02(), "T04": None})
    assert [(g.role, g.spike, g.rate) for g in found] == [
        ("base", SPIKE, 1e-4),
        ("base", SPIKE, 2e-4),
        ("instruct", SPIKE, 1e-4),
    ]
    assert [g.g_star for g in found] == [1.0, 1.0, 0.9]
    base = found[0]
    assert base.t01["g"].tolist() == [0.9, 1.0, 1.1]  # sorted by g
    assert base.t01["chi"].tolist() == [4, 5, 2]
    assert base.t02["g_condition"].tolist() == ["g1", "gstar"]
    assert base.t04.empty and base.t06.empty  # absent tables give empty frames
    assert found[1].t02.empty  # T02 has no row at rate 2e-4
    # the target rate matches to a relative 1e-12
    assert found[2].t02["ppl"].tolist() == [21.0, 22.0]


def test_group_cites_its_rows_and_has_a_label():
    (group, *_) = groups({"T01": _t01()})
    assert group.label == f"base, {SPIKE}, r = 0.0001"
    assert group.cite("T01", g=0.9) == f"`T01[base, {SPIKE}, r=0.0001, g=0.9]`"
    assert group.cite("T02", g_condition="g1") == f"`T02[base, {SPIKE}, r=0.0001, g1]`"


def test_gstar_falls_back_to_t02_and_is_nan_when_neither_tells():
    at_1e_4 = _t01().query("target_rate == 1e-4")  # the rate T02 has rows for
    unmarked = at_1e_4.drop(columns="opt_is_gstar")
    assert [g.g_star for g in groups({"T01": unmarked, "T02": _t02()})] == [1.0, 0.9]
    two_marked = at_1e_4.assign(opt_is_gstar=True)
    assert [g.g_star for g in groups({"T01": two_marked, "T02": _t02()})] == [1.0, 0.9]
    # no g* row: g* is NaN (every finding at g* is then undetermined, the summary says why)
    assert all(math.isnan(g.g_star) for g in groups({"T01": unmarked}))
    no_gstar = groups({"T01": _t01().drop(columns="opt_is_gstar"), "T02": _t02()})
    # (base, 1e-4) and (instruct, 1e-4) from T02; (base, 2e-4) has no T02 row
    assert [(g.role, g.rate) for g in no_gstar] == [
        ("base", 1e-4),
        ("base", 2e-4),
        ("instruct", 1e-4),
    ]
    assert no_gstar[0].g_star == 1.0 and no_gstar[2].g_star == 0.9
    assert math.isnan(no_gstar[1].g_star)


def test_tables_by_short_or_full_name_and_the_required_ones():
    frame = pd.DataFrame({"x": [1]})
    tables = {
        "T01_SUMMARY": frame,
        "t02": frame,
        "T03": frame,
        "T04": None,
        "T05_CRACKLING_DIAGNOSTICS": frame,
        "T06": frame,
        "notes": frame,
    }
    normalized = _normalize_tables(tables)
    assert list(normalized) == ["T01", "T02", "T03", "T04", "T05", "T06"]
    assert normalized["T04"] is None
    with pytest.raises(ValueError) as error:
        _normalize_tables({"T01": frame, "T03": frame, "T06": None})
    assert str(error.value) == (
        "the report needs the tables ['T02_GENERALIZATION', 'T05_CRACKLING_DIAGNOSTICS', "
        "'T06_ABLATIONS']"
    )


def test_one_matches_gains_to_1e_9_and_get_reads_a_float_or_nan():
    rows = pd.DataFrame({"g": [0.9, 1.0], "g_condition": ["gstar", "g1"], "b_tot": [0.7, "x"]})
    assert _one(rows, g=0.9 + 5e-10)["g_condition"] == "gstar"
    assert _one(rows, g=0.9 + 5e-9) is None
    assert _one(rows, g_condition="g1")["g"] == 1.0
    assert _one(rows, intervention_id="MLP_GLOBAL") is None  # no such column
    star = _one(rows, g=0.9)
    assert _get(star, "b_tot") == 0.7
    assert math.isnan(_get(_one(rows, g=1.0), "b_tot"))  # not a number
    assert math.isnan(_get(star, "chi"))
    assert math.isnan(_get(None, "b_tot"))


def test_finding_is_a_frozen_record():
    finding = Finding("S1", "present", "S1 is **present**.")
    assert (finding.key, finding.decision, finding.sentence) == (
        "S1",
        "present",
        "S1 is **present**.",
    )
    with pytest.raises(AttributeError):
        finding.decision = "absent"
