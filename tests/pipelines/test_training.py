"""The training pipeline through Kedro's SequentialRunner: which recipes it trains, on what text."""

from __future__ import annotations

import copy
import json

import pytest
from kedro.runner import SequentialRunner

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.measure.corpora import word_shingles
from avalanche_kedro.measure.trained import read_training_record, step_directory
from avalanche_kedro.pipelines import capture, training
from avalanche_kedro.pipelines.training.nodes import SHINGLE_WORDS, recipes_in_use

from .conftest import project_catalog, small_parameters

TINY_TRAINING = {"steps": 4, "batch_size": 2, "seq_len": 32, "warmup_steps": 1, "checkpoints": 3}


def test_recipes_in_use_are_those_the_roles_point_at_bases_first(tmp_path):
    specs = {
        "plain": {"path": "models/plain", "seed_name": "plain"},  # untrained: built elsewhere
        "base": {"path": "models/base", "training_text": "training_text", "training": {}},
        "qa": {"path": "models/qa", "finetune_from": "base", "training_text": "instruction_text"},
        "unused": {"path": "models/unused", "training_text": "training_text", "training": {}},
    }
    models = {
        "instruct": {"checkpoint": "models/qa"},
        "untrained": {"checkpoint": "models/base", "step": 0},
        "plain": {"checkpoint": "models/plain"},
        "hub": {"checkpoint": "Qwen/Qwen2.5-7B"},
    }
    roles = ["instruct", "untrained", "plain", "hub"]
    assert recipes_in_use(specs, models, roles) == ["base", "qa"]
    assert recipes_in_use(specs, models, ["hub"]) == []
    assert recipes_in_use(None, models, roles) == []


def _trained_parameters(root) -> dict:
    params = small_parameters(root)
    base, qa = str(root / "models" / "tiny-trained"), str(root / "models" / "tiny-trained-qa")
    recipe = {k: v for k, v in params["embedded_checkpoints"]["small-llama"].items()}
    params["embedded_checkpoints"] = {
        "tiny-trained": {
            **recipe,
            "path": base,
            "seed_name": "test-tiny-trained",
            "training_text": "training_text",
            "training": TINY_TRAINING,
        },
        "tiny-trained-qa": {
            "path": qa,
            "seed_name": "test-tiny-trained-qa",
            "finetune_from": "tiny-trained",
            "training_text": "instruction_text",
            "training": TINY_TRAINING,
        },
    }
    params["model_roles"] = ["base", "instruct", "untrained"]
    params["models"] = {
        "base": {"checkpoint": base, "step": "final"},
        "instruct": {"checkpoint": qa},
        "untrained": {"checkpoint": base, "step": 0},
    }
    return params


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("training-run")
    params = _trained_parameters(root)
    catalog = project_catalog(root, params)
    roles = params["model_roles"]
    resolve = capture.create_pipeline(roles).only_nodes(*[f"{r}.resolve_model" for r in roles])
    pipeline = training.create_pipeline(roles) + resolve
    SequentialRunner().run(pipeline, catalog)
    return catalog, root, params


def test_every_recipe_in_use_is_trained_and_reported(trained_run):
    catalog, root, _ = trained_run
    built = catalog.load("embedded_models")
    assert sorted(built["recipes"]) == ["tiny-trained", "tiny-trained-qa"]
    base = built["recipes"]["tiny-trained"]
    assert sorted(int(s) for s in base["steps"]) == [0, 1, 4]  # checkpoint_steps(4, 3)
    assert base["reused"] is False and base["records_dropped_by_decontamination"] >= 0
    assert built["decontamination"]["shingle_words"] == SHINGLE_WORDS == 8
    on_disk = read_training_record(root / "models" / "tiny-trained")
    assert (
        on_disk["steps"] == base["steps"]
        and on_disk["records_dropped"] == (base["records_dropped_by_decontamination"])
    )


def test_roles_resolve_to_their_steps_with_the_training_provenance(trained_run):
    catalog, root, _ = trained_run
    base = catalog.load("base.model_manifest")
    untrained = catalog.load("untrained.model_manifest")
    instruct = catalog.load("instruct.model_manifest")
    assert base["checkpoint"] == str(step_directory(root / "models" / "tiny-trained", 4))
    assert untrained["checkpoint"] == str(step_directory(root / "models" / "tiny-trained", 0))
    assert (base["training_step"], untrained["training_step"]) == (4, 0)
    assert base["model_id"] == "tiny-trained@step-4" and untrained["model_id"].endswith("step-0")
    assert base["source"] == untrained["source"] == instruct["source"] == "embedded"
    # same tokenizer for all three: the windows and nulls are shared, comparisons are paired
    assert base["tokenizer_sha256"] == untrained["tokenizer_sha256"] == instruct["tokenizer_sha256"]
    assert base["content_sha256"] != untrained["content_sha256"]


def test_no_training_record_shares_eight_words_with_the_measured_corpora(trained_run):
    catalog, root, _ = trained_run
    measured: set[int] = set()
    for name in ("corpus_A", "corpus_B"):
        for record in catalog.load(name):
            measured |= word_shingles(record, SHINGLE_WORDS)
    kept = json.loads((root / "models" / "tiny-trained" / "TRAINING.json").read_text())
    assert kept["training_records"] > 1000
    from avalanche_kedro.measure.corpora import decontaminate

    records, _ = decontaminate(catalog.load("training_text"), [], SHINGLE_WORDS)
    overlapping = [r for r in records if word_shingles(r, SHINGLE_WORDS) & measured]
    assert len(records) - len(overlapping) == kept["training_records"]


def test_a_second_run_reuses_the_checkpoints_without_reading_text(trained_run):
    catalog, root, params = trained_run
    before = {p: p.stat().st_mtime_ns for p in (root / "models").rglob("*") if p.is_file()}
    fresh = project_catalog(root, params)
    fresh["training_text"] = _Unreadable()
    fresh["instruction_text"] = _Unreadable()
    SequentialRunner().run(training.create_pipeline(params["model_roles"]), fresh)
    again = fresh.load("embedded_models")
    assert all(entry["reused"] for entry in again["recipes"].values())
    after = {p: p.stat().st_mtime_ns for p in (root / "models").rglob("*") if p.is_file()}
    assert after == before


class _Unreadable:
    """A training text that fails if anything iterates it (reuse must not read the text)."""

    def __iter__(self):
        raise AssertionError("the training text was read although the checkpoints were reused")


def test_an_unknown_training_text_is_refused_before_training(tmp_path):
    params = _trained_parameters(tmp_path)
    spec = copy.deepcopy(params["embedded_checkpoints"])
    spec["tiny-trained"]["training_text"] = "wikipedia"
    with pytest.raises(ConfigurationError, match="training_text is 'wikipedia'"):
        training.nodes.train_embedded_models(
            [], [], [], [], spec, params["models"], params["model_roles"], {}, {}
        )
    assert not (tmp_path / "models").exists()
