"""Figure ids and provenance: the FIGURES registry, metadata attached as ASCII text, and the
run, config hash and models resolved from run_provenance and the tables (which must agree)."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.figure import Figure

from avalanche_kedro.core.errors import ArtifactError
from avalanche_kedro.study import figures
from avalanche_kedro.study.figures import metadata
from tests.study.figures.tables_builder import CONFIG_HASH, RUN_ID, make_t01, provenance


def test_tables_of_another_run_are_refused():
    other = {**provenance(), "run_id": "run-ffffffffffffffff"}
    with pytest.raises(ArtifactError, match="run_id"):
        figures.f03_branching_vs_gain(make_t01(), other)


def test_every_figure_id_has_a_function_in_spec_order():
    ids = [f"F{i:02d}" for i in range(1, 15)]  # F12: a training series; F13-F14: the lens
    assert [name[:3] for name in metadata.FIGURES] == ids
    assert list(figures.FIGURE_FUNCTIONS) == list(metadata.FIGURES)
    assert all(metadata.FIGURES[name] for name in metadata.FIGURES)
    # the contact sheet is drawn from the figures, not from a table: titled, but no function
    assert list(metadata.FIGURE_TITLES) == [*metadata.FIGURES, metadata.CONTACT_SHEET]
    assert metadata.CONTACT_SHEET not in figures.FIGURE_FUNCTIONS


def test_attach_metadata_turns_values_into_ascii_text():
    figure = Figure()
    assert metadata.figure_metadata(figure) is None
    returned = metadata.attach_metadata(
        figure, {"title": "β-branching", "models": {"y": 1, "x": [1, 2]}, 7: 3.5}
    )
    assert returned is figure
    assert metadata.figure_metadata(figure) == {
        "title": "\\u03b2-branching",
        "models": '{"x": [1, 2], "y": 1}',
        "7": "3.5",
    }
    assert getattr(figure, metadata.METADATA_ATTRIBUTE) is metadata.figure_metadata(figure)


def _table(**columns) -> pd.DataFrame:
    base = {
        "model_role": ["base", "base"],
        "model_id": ["tiny-base", "tiny-base"],
        "run_id": [RUN_ID, RUN_ID],
        "config_hash": [CONFIG_HASH, CONFIG_HASH],
    }
    return pd.DataFrame({**base, **columns})


def test_provenance_comes_from_the_tables_when_run_provenance_is_absent():
    resolved = metadata._resolve_provenance(None, [("T01_SUMMARY", _table())], ["base"])
    assert resolved == {
        "run_id": RUN_ID,
        "config_hash": CONFIG_HASH,
        "code_version": "unknown",  # neither source has one
        "model_ids": {"base": "tiny-base"},
        "models": {"base": {"model_id": "tiny-base"}},
    }


def test_run_provenance_models_keep_only_their_known_fields():
    prov = {
        "run_id": RUN_ID,
        "config_hash": CONFIG_HASH,
        "code_version": "abc123",
        "models": {"base": {"model_id": "tiny-base", "revision": "r1", "source": None, "x": 1}},
    }
    resolved = metadata._resolve_provenance(prov, [("T01_SUMMARY", _table())], ["base"])
    assert resolved["code_version"] == "abc123"
    assert resolved["models"] == {"base": {"model_id": "tiny-base", "revision": "r1"}}


def test_a_run_without_id_or_a_model_mismatch_is_refused():
    with pytest.raises(ArtifactError, match="No run_id"):
        metadata._resolve_provenance({}, [], ["base"])
    prov = {"run_id": RUN_ID, "config_hash": CONFIG_HASH, "models": {"base": {"model_id": "m"}}}
    with pytest.raises(ArtifactError, match="names model 'tiny-base' for role 'base'"):
        metadata._resolve_provenance(prov, [("T01_SUMMARY", _table())], ["base"])
    mixed = _table(config_hash=[CONFIG_HASH, "d" * 64])
    with pytest.raises(ArtifactError, match="mixes several values of 'config_hash'"):
        metadata._resolve_provenance(None, [("T01_SUMMARY", mixed)], ["base"])


def test_attach_t01_writes_title_keywords_and_the_real_mlp_condition():
    figure = metadata._attach_t01(
        Figure(), "F09_SUSCEPTIBILITY", make_t01(("base",)), provenance(("base",)), ["base"]
    )
    info = metadata.figure_metadata(figure)
    assert set(metadata.REQUIRED_METADATA) <= set(info)
    assert info["Title"] == "F09_SUSCEPTIBILITY: Susceptibility chi vs MLP gain"
    assert info["model_ids"] == "base:tiny-base"
    assert info["Keywords"].startswith(f"run_id={RUN_ID}; config_hash={CONFIG_HASH}; ")
    assert info["condition"].startswith("dataset_role=A; spike_def_id=")
    assert info["condition"].endswith(metadata.REAL_MLP_CONDITION)
    assert info["source_datasets"] == "T01_SUMMARY"
