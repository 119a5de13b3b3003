"""F02: achieved / target event rate per layer (log axis), every gain, in-sample and held out."""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import rate_matching, style
from tests.study.figures.tables_builder import GAINS, RATES, L, make_tau_table, provenance


def _panel(figure, index: int = 0):
    return figure.axes[index]


def _markers(ax, marker: str):
    (line,) = [line for line in ax.lines if line.get_marker() == marker]
    return line


def test_f02_shows_achieved_over_target_on_a_log_axis():
    tau = make_tau_table("base")
    figure = rate_matching.f02_rate_matching({"base": tau}, provenance(("base",)))
    ax = _panel(figure)  # base (row), SPIKE_ONE_SIDED_POS (column)
    assert ax.get_title() == "base · SPIKE_ONE_SIDED_POS"
    assert ax.get_yscale() == "log"
    assert "achieved / target" in figure._supylabel.get_text()
    assert "1×" in [label.get_text() for label in ax.get_yticklabels()]
    # markers at g = 1: calibration achieved = r* -> 1×; held out r*(1 + 0.2 l / g) -> 1 + 0.2 l
    calibration, held_out = _markers(ax, "o"), _markers(ax, "^")
    np.testing.assert_allclose(calibration.get_ydata(), 1.0)
    # x = layer + the rate's offset in [-0.3, 0.3]: 0.001 -> -0.3, 0.002 -> 0, 0.004 -> +0.3
    points = sorted(zip(held_out.get_xdata(), held_out.get_ydata(), strict=True))
    expected = [(layer + o, 1 + 0.2 * layer) for layer in range(L) for o in (-0.3, 0.0, 0.3)]
    np.testing.assert_allclose(points, expected)
    # slices told apart by fill: calibration filled, held out hollow, both in the role colour
    base = style.ROLE_COLOURS[0].lower()
    assert mpl.colors.to_hex(calibration.get_markerfacecolor()) == base
    assert held_out.get_markerfacecolor() == "white"
    assert mpl.colors.to_hex(held_out.get_markeredgecolor()) == base


def test_f02_bars_span_the_gains_and_the_largest_held_out_ratio_is_named():
    figure = rate_matching.f02_rate_matching(
        {"base": make_tau_table("base")}, provenance(("base",))
    )
    ax = _panel(figure)
    bars = [c for c in ax.collections if isinstance(c, mpl.collections.LineCollection)]
    held_out = bars[0]  # drawn first, under the calibration bars
    # layer 3, rate 0.001: 1 + 0.2*3/g over g = 0.8, 1, 1.25 -> from 1.48 to 1.75
    segment = held_out.get_segments()[3 * len(RATES)]
    np.testing.assert_allclose(segment[:, 1], [1 + 0.6 / 1.25, 1 + 0.6 / 0.8])
    (note,) = [t for t in ax.texts if t.get_text().startswith("held out")]
    assert note.get_text() == "held out: largest 1.75× (layer 3, rate 0.001, g 0.8)"


def test_f02_draws_the_target_line_above_the_markers_and_the_gate_behind_them():
    figure = rate_matching.f02_rate_matching(
        {"base": make_tau_table("base")}, provenance(("base",))
    )
    ax = _panel(figure)
    (one,) = [line for line in ax.lines if list(line.get_ydata()) == [1.0, 1.0]]
    markers = [line for line in ax.lines if line.get_marker() in ("o", "^")]
    assert one.get_zorder() > max(line.get_zorder() for line in markers)
    assert mpl.colors.to_hex(one.get_color()) == style.REFERENCE_COLOUR.lower()
    gates = [c for c in ax.collections if isinstance(c, mpl.collections.PolyCollection)]
    assert len(gates) == L  # one band per layer: 1 ± rate_match_tol / r* = 1 ± 0.05
    low, high = (
        gates[0].get_paths()[0].vertices[:, 1].min(),
        gates[0].get_paths()[0].vertices[:, 1].max(),
    )
    assert (low, high) == pytest.approx((0.95, 1.05))
    assert max(g.get_zorder() for g in gates) < min(line.get_zorder() for line in markers)


def test_f02_draws_only_the_mlp_global_rows():
    tau = make_tau_table("base")
    attention = tau.assign(intervention_id="ATTN_GLOBAL", achieved_rate_calibration=1.0)
    both = pd.concat([tau, attention], ignore_index=True)
    figure = rate_matching.f02_rate_matching({"base": both}, provenance(("base",)))
    calibration = _markers(_panel(figure), "o")
    assert len(calibration.get_ydata()) == L * len(RATES)
    np.testing.assert_allclose(calibration.get_ydata(), 1.0)


def test_f02_roles_follow_the_provenance_and_name_their_tau_tables():
    tables = {r: make_tau_table(r) for r in ("instruct", "base")}
    figure = rate_matching.f02_rate_matching(tables, provenance(("base", "instruct")))
    info = figures.figure_metadata(figure)
    assert info["source_datasets"] == "base.tau_table, instruct.tau_table"
    assert info["model_ids"] == "base:tiny-base, instruct:tiny-instruct"
    assert info["condition"] == (
        "dataset_role=A; intervention_id=MLP_GLOBAL; slices=calibration,analysis; "
        "spike_def_id=SPIKE_ONE_SIDED_POS,SPIKE_TWO_SIDED_ABS; target_rate=0.001,0.002,0.004; "
        f"g={','.join(f'{g:g}' for g in GAINS)}"
    )
    assert _panel(figure, 0).get_title() == "base · SPIKE_ONE_SIDED_POS"
    assert _panel(figure, 2).get_title() == "instruct · SPIKE_ONE_SIDED_POS"
    instruct = _markers(_panel(figure, 2), "o")
    assert mpl.colors.to_hex(instruct.get_markerfacecolor()) == style.ROLE_COLOURS[1].lower()


def test_f02_a_role_without_finite_rates_is_not_available():
    tau = make_tau_table("instruct").assign(achieved_rate_analysis=np.nan)
    tau["achieved_rate_calibration"] = np.nan
    tables = {"base": make_tau_table("base"), "instruct": tau}
    figure = rate_matching.f02_rate_matching(tables, provenance(("base", "instruct")))
    empty = _panel(figure, 2)
    assert "not available" in empty.texts[0].get_text()
    assert not empty.lines
    assert _markers(_panel(figure, 0), "^")


def test_f02_names_the_tau_table_that_lacks_a_column():
    tau = make_tau_table("base").drop(columns="achieved_rate_analysis")
    with pytest.raises(ArtifactError, match=r"base.tau_table lacks .*achieved_rate_analysis"):
        rate_matching.f02_rate_matching({"base": tau}, provenance(("base",)))
