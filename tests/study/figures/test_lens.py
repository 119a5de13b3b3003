"""F13 (lens and event density vs layer) and F14 (collapse layer vs cascade depth) drawn from
the hand-made T10/T11 and cross-tabulations of ``tests/study/lens_builder.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer, ErrorbarContainer

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import lens as fl
from avalanche_kedro.study.lens import primary_condition
from tests.study import lens_builder as b


@pytest.fixture(scope="module")
def t10() -> pd.DataFrame:
    return b.make_t10()


@pytest.fixture(scope="module")
def t11() -> pd.DataFrame:
    return b.make_t11()


def _role_lines(ax):
    """The plotted data lines (not the reference lines at y = 0)."""
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 2]


def test_f13_draws_four_quantities_at_both_gain_conditions(t10):
    figure = figures.f13_lens_depth(t10, b.provenance(), control_role="untrained")
    axes = figure.axes
    assert len(axes) == 8
    titles = [ax.get_title() for ax in axes]
    assert titles[0] == "entropy of the lens distribution\nat g = 1"
    assert titles[4].endswith("at g* (base 1.1, instruct 0.9, untrained 1.25)")
    assert [ax.get_ylabel() for ax in axes[:4]] == [
        "mean lens entropy (nats)",
        "mean KL(p_final ‖ p_l) (nats)",
        "occupied sites\n(fraction of window × token sites)",
        "sites in avalanches of ≥ 2 sites\n(fraction of window × token sites)",
    ]
    assert all(ax.get_xlabel() == fl.LAYER_LABEL for ax in axes)
    for ax in axes:
        lines = _role_lines(ax)
        assert len(lines) == 3  # one per role
        assert all(list(line.get_xdata()) == [0, 1, 2, 3] for line in lines)
    base, instruct, untrained = _role_lines(axes[0])
    np.testing.assert_allclose(base.get_ydata(), b.ENTROPY["base"])
    np.testing.assert_allclose(_role_lines(axes[4])[0].get_ydata(), [6.2, 5.7, 3.2, 2.7])
    np.testing.assert_allclose(_role_lines(axes[3])[1].get_ydata(), [0.175, 0.175, 0.225, 0.25])
    # the untrained role is grey, dotted and hollow
    assert untrained.get_color() == fl.UNTRAINED_COLOUR and untrained.get_linestyle() == ":"
    assert untrained.get_markerfacecolor() == "white"
    assert base.get_linestyle() == "-" and base.get_color() != fl.UNTRAINED_COLOUR
    title = figure.get_suptitle()
    assert "SPIKE_ONE_SIDED_POS, r* = 0.002" in title.replace("\n", " ")
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["base (tiny-base)", "instruct (tiny-instruct)", "untrained (tiny-untrained)"]


def test_f13_carries_the_run_provenance_and_its_condition(t10):
    metadata = figures.figure_metadata(figures.f13_lens_depth(t10, b.provenance()))
    assert metadata["figure_id"] == "F13_LENS_DEPTH"
    assert metadata["run_id"] == b.RUN_ID and metadata["config_hash"] == b.CONFIG_HASH
    assert metadata["model_ids"] == (
        "base:tiny-base, instruct:tiny-instruct, untrained:tiny-untrained"
    )
    assert metadata["condition"] == (
        "dataset_role=A; spike_def_id=SPIKE_ONE_SIDED_POS; target_rate=0.002; "
        "g=0.9,1,1.1,1.25; intervention_id=MLP_GLOBAL; g_condition=g1,gstar"
    )
    assert metadata["source_datasets"] == "T10_LENS"


def test_f13_draws_a_chosen_condition_and_refuses_a_stale_table(t10):
    figure = figures.f13_lens_depth(
        t10, b.provenance(), spike_def_id="SPIKE_TWO_SIDED_ABS", target_rate=0.004
    )
    assert "SPIKE_TWO_SIDED_ABS, r* = 0.004" in figure.get_suptitle().replace("\n", " ")
    with pytest.raises(ArtifactError, match="occupancy"):
        figures.f13_lens_depth(t10.drop(columns="occupancy"), b.provenance())


def test_depth_by_collapse_is_the_token_weighted_mean_depth():
    crosstab = b.lens_collapse_crosstab("base")
    one = crosstab[
        (crosstab["g_condition"] == "g1")
        & (crosstab["spike_def_id"] == b.SPIKES[0])
        & (crosstab["target_rate"] == 0.002)
    ]
    table = fl.depth_by_collapse(one)
    assert list(table["collapse_layer"]) == [0, 1, 2, 3]
    assert list(table["n_tokens"]) == [8, 8, 12, 20]
    # (0·6 + 1·2)/8, (1·5 + 2·3)/8, (2·8 + 3·4)/12, (3·10 + 4·10)/20
    np.testing.assert_allclose(table["mean_cascade_depth"], [0.25, 11 / 8, 28 / 12, 3.5])


def test_f14_draws_depth_per_collapse_layer_and_a_forest_of_rho_against_the_null(t11):
    crosstabs = b.per_role(b.lens_collapse_crosstab)
    figure = figures.f14_collapse_vs_cascade(
        t11, crosstabs, b.provenance(), control_role="untrained"
    )
    by_label = {ax.get_label(): ax for ax in figure.axes}
    assert set(by_label) == {"g1", "gstar", "forest"}
    left, forest = by_label["g1"], by_label["forest"]
    assert left.get_title().endswith("at g = 1")
    assert by_label["gstar"].get_title().endswith("at g* (base 1.1, instruct 0.9, untrained 1.25)")
    assert left.get_xlabel().startswith("collapse layer (0-based)")
    assert left.get_ylabel() == "mean cascade depth\n(layers spanned by events at the token)"
    scatters = [c for c in left.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 3  # one per role
    base_points = scatters[0].get_offsets()
    np.testing.assert_allclose(base_points[:, 1], [0.25, 11 / 8, 28 / 12, 3.5])
    # marker area ∝ tokens: the untrained role's one cell of 48 tokens is the largest
    np.testing.assert_allclose(scatters[2].get_sizes(), [fl.MAX_AREA])
    np.testing.assert_allclose(scatters[0].get_sizes(), fl._area([8, 8, 12, 20], 48))
    assert forest.get_xlabel().startswith("Spearman ρ") and "dimensionless" in forest.get_xlabel()
    assert [t.get_text() for t in forest.get_yticklabels()] == [
        "base · g = 1",
        "base · g* = 1.1",
        "instruct · g = 1",
        "instruct · g* = 0.9",
        "untrained · g = 1",
        "untrained · g* = 1.25",
    ]
    bars = [c for c in forest.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 5  # rho is undefined for the untrained role at g = 1
    assert bars[0].lines[0].get_xdata()[0] == pytest.approx(0.45)
    # the axis zooms on the data, symmetric about 0: every CI and null interval is inside
    low, high = forest.get_xlim()
    assert low == pytest.approx(-high) and high <= 1.0
    t11 = b.make_t11()
    spike, rate = primary_condition(t11)  # the condition F14 draws
    t11 = t11[(t11["spike_def_id"] == spike) & (t11["target_rate"] == rate)]
    extent = t11[["rho_ci_low", "rho_ci_high", "null_rho_low", "null_rho_high"]].abs().max().max()
    assert extent < high <= max(0.1, 1.15 * extent) + 1e-12
    nulls = [c.patches[0] for c in forest.containers if isinstance(c, BarContainer)]
    assert len(nulls) == 5  # the undefined row has no null either
    assert nulls[0].get_x() == pytest.approx(-0.08)
    assert nulls[0].get_width() == pytest.approx(0.19)
    notes = [t.get_text() for t in forest.texts]
    # 0.001 is the floor 1 / (1 + 999 permutations): the test can only bound p there
    assert notes == ["p = 0.002", "p ≤ 0.001", "p = 0.41", "p = 0.22"] + [
        "undefined: collapse layer constant",
        "p = 0.6",
    ]
    shaded = [p for p in forest.patches if p.get_facecolor()[:3] == pytest.approx((0.94,) * 3)]
    assert len(shaded) == 2  # the untrained role's two rows
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "left panels, marker area:" in legend and "48 tokens" in legend
    assert "untrained (tiny-untrained)" in legend and "token-shuffle null, 2.5–97.5 %" in legend


def test_f14_carries_the_run_provenance_and_names_every_crosstab(t11):
    crosstabs = b.per_role(b.lens_collapse_crosstab)
    metadata = figures.figure_metadata(
        figures.f14_collapse_vs_cascade(t11, crosstabs, b.provenance())
    )
    assert metadata["figure_id"] == "F14_COLLAPSE_VS_CASCADE"
    assert metadata["run_id"] == b.RUN_ID and metadata["config_hash"] == b.CONFIG_HASH
    assert "untrained:tiny-untrained" in metadata["model_ids"]
    assert metadata["condition"].startswith(
        "dataset_role=A; spike_def_id=SPIKE_ONE_SIDED_POS; target_rate=0.002;"
    )
    assert metadata["source_datasets"] == (
        "T11_COLLAPSE_VS_CASCADE, base.lens_collapse_crosstab, instruct.lens_collapse_crosstab, "
        "untrained.lens_collapse_crosstab"
    )
    with pytest.raises(ArtifactError, match="run_provenance says 'run-ffffffffffffffff'"):
        other = {**b.provenance(), "run_id": "run-ffffffffffffffff"}
        figures.f14_collapse_vs_cascade(t11, crosstabs, other)


def test_untrained_roles_are_grey_and_hollow_and_the_legend_says_so():
    styles = fl.role_styles(["base", "step0"], ["step0"])
    assert styles["step0"]["color"] == fl.UNTRAINED_COLOUR
    assert styles["step0"]["markerfacecolor"] == "white" and styles["step0"]["linestyle"] == ":"
    assert styles["base"]["markerfacecolor"] == styles["base"]["color"]
    ids = {"base": "m", "step0": "m@0"}
    assert fl._role_label("step0", ids, ["step0"]) == "step0 (m@0), untrained"
    assert fl._role_label("untrained", {}, ["untrained"]) == "untrained (?)"
    assert fl._role_label("base", ids, ["step0"]) == "base (m)"
