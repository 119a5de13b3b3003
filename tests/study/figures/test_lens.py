"""F13 (lens and event density vs layer) and F14 (collapse layer vs cascade depth) drawn from
the hand-made T10/T11 and cross-tabulations of ``tests/study/lens_builder.py``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer, ErrorbarContainer

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import lens as fl
from avalanche_kedro.study.figures import style
from avalanche_kedro.study.lens import primary_condition
from tests.study import lens_builder as b
from tests.study.figures.tables_builder import assert_print_ready, drawn_colours

#: Colours F13/F14 may use: roles, the reference lines and the token-shuffle null.
ROLE_PALETTE = {
    *(to_hex(c) for c in style.ROLE_COLOURS),
    to_hex(style.UNTRAINED_COLOUR),
    to_hex(style.REFERENCE_COLOUR),
}


@pytest.fixture(scope="module")
def t10() -> pd.DataFrame:
    return b.make_t10()


@pytest.fixture(scope="module")
def t11() -> pd.DataFrame:
    return b.make_t11()


def _not_available(ax) -> bool:
    return any(t.get_text().startswith("not available") for t in ax.texts)


def _role_lines(ax):
    """The plotted data lines (not the reference lines at y = 0)."""
    return [line for line in ax.get_lines() if len(line.get_xdata()) > 2]


def test_f13_draws_four_quantities_against_the_layer_at_both_gain_conditions(t10):
    figure = figures.f13_lens_depth(t10, b.provenance(), control_role="untrained")
    axes = np.array(figure.axes).reshape(4, 2)  # quantities (rows) x g = 1, g* (columns)
    assert axes[0, 0].get_title() == "at g = 1\nentropy of the lens distribution"
    assert axes[0, 1].get_title() == (
        "at g* (base 1.1, instruct 0.9, untrained 1.25)\nentropy of the lens distribution"
    )
    assert axes[2, 1].get_title() == "event density: window × token sites with ≥ 1 event"
    assert [ax.get_ylabel() for ax in axes[:, 0]] == [
        "mean entropy (nats)",
        "mean KL (nats)",
        "fraction of sites",
        "fraction of sites",
    ]
    assert [ax.get_xlabel() for ax in axes[-1]] == [fl.LAYER_LABEL] * 2
    for ax in axes.ravel():
        lines = _role_lines(ax)
        assert len(lines) == 3  # one per role
        assert all(list(line.get_xdata()) == [0, 1, 2, 3] for line in lines)
    # g = 1 and g* share one y range per quantity
    for row in axes:
        assert row[0].get_ylim() == row[1].get_ylim()
    base, instruct, untrained = _role_lines(axes[0, 0])
    np.testing.assert_allclose(base.get_ydata(), b.ENTROPY["base"])
    np.testing.assert_allclose(_role_lines(axes[0, 1])[0].get_ydata(), [6.2, 5.7, 3.2, 2.7])
    np.testing.assert_allclose(_role_lines(axes[3, 0])[1].get_ydata(), [0.175, 0.175, 0.225, 0.25])
    # the untrained role is grey, dotted and hollow; the trained ones take the role colours
    assert untrained.get_color() == fl.UNTRAINED_COLOUR == style.UNTRAINED_COLOUR
    assert untrained.get_linestyle() == ":" and untrained.get_markerfacecolor() == "white"
    assert base.get_linestyle() == "-" and base.get_color() == style.ROLE_COLOURS[0]
    assert instruct.get_color() == style.ROLE_COLOURS[1]
    title = figure.get_suptitle()
    assert "SPIKE_ONE_SIDED_POS, r* = 0.002" in title.replace("\n", " ")
    labels = [t.get_text() for t in figure.legends[0].get_texts()]
    assert labels == ["base (tiny-base)", "instruct (tiny-instruct)", "untrained (tiny-untrained)"]


def test_f13_is_print_ready_and_coloured_by_role_only(t10):
    figure = figures.f13_lens_depth(t10, b.provenance(), control_role="untrained")
    assert_print_ready(figure)
    assert drawn_colours(figure) <= ROLE_PALETTE


def test_f13_without_gstar_rows_shows_the_gstar_column_not_available(t10):
    figure = figures.f13_lens_depth(t10[t10["g_condition"] == "g1"], b.provenance())
    axes = np.array(figure.axes).reshape(4, 2)
    assert not any(_not_available(ax) for ax in axes[:, 0])
    assert all(_not_available(ax) for ax in axes[:, 1])
    assert axes[0, 1].get_title().startswith("at g* (no g* row)")
    assert "no role has a g* row in T10" in axes[0, 1].texts[0].get_text()
    # one role draws its lines alone
    single = figures.f13_lens_depth(t10[t10["model_role"] == "base"], b.provenance(["base"]))
    assert len(_role_lines(single.axes[0])) == 1


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
    assert left.get_title() == "mean cascade depth per collapse layer\nat g = 1"
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
    # the null is the registry's token-shuffle colour, light; its mean at full strength
    assert to_hex(nulls[0].get_facecolor()) == to_hex(style.NULL_COLOURS["tokshuf"])
    assert nulls[0].get_alpha() == fl.NULL_ALPHA
    means = [
        line for line in forest.get_lines() if line.get_color() == style.NULL_COLOURS["tokshuf"]
    ]
    assert len(means) == 5
    shaded = [
        p
        for p in forest.patches
        if to_hex(p.get_facecolor()) == to_hex(style.UNTRAINED_COLOUR) and p.get_alpha() == 0.12
    ]
    assert len(shaded) == 2  # the untrained role's two rows
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert "top panels, marker area:" in legend and "48 tokens" in legend
    assert "untrained (tiny-untrained)" in legend and "token-shuffle null, 2.5–97.5 %" in legend


def test_f14_is_print_ready_with_role_and_token_shuffle_colours_only(t11):
    crosstabs = b.per_role(b.lens_collapse_crosstab)
    figure = figures.f14_collapse_vs_cascade(
        t11, crosstabs, b.provenance(), control_role="untrained"
    )
    assert_print_ready(figure)
    assert drawn_colours(figure) <= ROLE_PALETTE | {to_hex(style.NULL_COLOURS["tokshuf"])}


def test_f14_with_a_role_without_gstar_and_without_crosstabs_says_not_available(t11):
    crosstabs = b.per_role(b.lens_collapse_crosstab)
    no_gstar = t11[~((t11["model_role"] == "instruct") & (t11["g_condition"] == "gstar"))]
    figure = figures.f14_collapse_vs_cascade(no_gstar, crosstabs, b.provenance())
    forest = {ax.get_label(): ax for ax in figure.axes}["forest"]
    labels = [t.get_text() for t in forest.get_yticklabels()]
    assert "instruct · g = 1" in labels and not any(x.startswith("instruct · g*") for x in labels)
    assert (
        "(base 1.1, untrained 1.25)"
        in {ax.get_label(): ax for ax in figure.axes}["gstar"].get_title()
    )
    only_g1 = {role: c[c["g_condition"] == "g1"] for role, c in crosstabs.items()}
    figure = figures.f14_collapse_vs_cascade(t11, only_g1, b.provenance())
    by_label = {ax.get_label(): ax for ax in figure.axes}
    assert _not_available(by_label["gstar"]) and not _not_available(by_label["g1"])
    assert "no cross-tabulation of any role" in by_label["gstar"].texts[0].get_text()


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
    assert fl.role_label("step0", ids, ["step0"]) == "step0 (m@0), untrained"
    assert fl.role_label("untrained", {}, ["untrained"]) == "untrained (?)"
    assert fl.role_label("base", ids, ["step0"]) == "base (m)"
