"""F02: achieved vs target event rate per layer, every gain, in-sample and held out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import rate_matching
from tests.study.figures.tables_builder import GAINS, L, make_tau_table, provenance


def _panel(figure, index: int = 0):
    return [ax for ax in figure.axes if ax.get_label() != "<colorbar>"][index]


def test_f02_points_are_the_tau_table_rates_jittered_by_gain():
    tau = make_tau_table("base")
    figure = rate_matching.f02_rate_matching({"base": tau}, provenance(("base",)))
    # first panel: base, SPIKE_ONE_SIDED_POS (row), the smallest rate (column)
    ax = _panel(figure)
    assert ax.get_title() == "base · SPIKE_ONE_SIDED_POS\ntarget rate 0.001"
    rows = tau[(tau.spike_def_id == "SPIKE_ONE_SIDED_POS") & (tau.target_rate == 0.001)]
    targets, calibration, analysis = ax.collections
    # one black bar per layer at the mean r* over gains
    np.testing.assert_allclose(
        [segment[0, 1] for segment in targets.get_segments()],
        rows.groupby("layer")["r_star"].mean().to_numpy(),
    )
    # x = layer + the gain's offset in [-0.35, 0.35]: g = 0.8 -> -0.35, 1.0 -> 0, 1.25 -> +0.35
    offset = {0.8: -0.35, 1.0: 0.0, 1.25: 0.35}
    expected_x = [layer + offset[g] for g, layer in zip(rows.g, rows.layer, strict=True)]
    np.testing.assert_allclose(calibration.get_offsets()[:, 0], expected_x)
    np.testing.assert_allclose(calibration.get_offsets()[:, 1], rows.achieved_rate_calibration)
    np.testing.assert_allclose(analysis.get_offsets()[:, 1], rows.achieved_rate_analysis)
    assert ax.get_yscale() == "log"


def test_f02_draws_only_the_mlp_global_rows():
    tau = make_tau_table("base")
    attention = tau.assign(intervention_id="ATTN_GLOBAL", achieved_rate_calibration=1.0)
    both = pd.concat([tau, attention], ignore_index=True)
    figure = rate_matching.f02_rate_matching({"base": both}, provenance(("base",)))
    _, calibration, _ = _panel(figure).collections
    assert len(calibration.get_offsets()) == len(GAINS) * L
    assert calibration.get_offsets()[:, 1].max() < 1.0


def test_f02_roles_follow_the_provenance_and_name_their_tau_tables():
    tables = {r: make_tau_table(r) for r in ("instruct", "base")}
    figure = rate_matching.f02_rate_matching(tables, provenance(("base", "instruct")))
    info = figures.figure_metadata(figure)
    assert info["source_datasets"] == "base.tau_table, instruct.tau_table"
    assert info["model_ids"] == "base:tiny-base, instruct:tiny-instruct"
    assert info["condition"] == (
        "dataset_role=A; intervention_id=MLP_GLOBAL; slices=calibration,analysis; "
        "spike_def_id=SPIKE_ONE_SIDED_POS,SPIKE_TWO_SIDED_ABS; target_rate=0.001,0.002,0.004; "
        "g=0.8,1,1.25"
    )
    assert _panel(figure, 0).get_title().startswith("base · SPIKE_ONE_SIDED_POS")
    assert _panel(figure, 6).get_title().startswith("instruct · SPIKE_ONE_SIDED_POS")


def test_f02_names_the_tau_table_that_lacks_a_column():
    tau = make_tau_table("base").drop(columns="achieved_rate_analysis")
    with pytest.raises(ArtifactError, match=r"base.tau_table lacks .*achieved_rate_analysis"):
        rate_matching.f02_rate_matching({"base": tau}, provenance(("base",)))
