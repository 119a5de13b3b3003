"""Trained embedded checkpoints: recipes, a reproducible build, reuse, and never overwriting."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from avalanche_kedro.core.errors import CheckpointError, ConfigurationError, CorpusError
from avalanche_kedro.measure.checkpoints import directory_sha256
from avalanche_kedro.measure.trained import (
    TRAINING_RECORD,
    ensure_trained_checkpoints,
    recipe_sha256,
    resolve_step,
    reusable_record,
    step_directory,
    trained_recipe,
)
from avalanche_kedro.measure.training import TrainingError, checkpoint_steps
from tests.conftest import TINY_ARCHITECTURE

TINY = {
    "path": "unused",
    "seed_name": "unit-trained",
    **TINY_ARCHITECTURE,
    "training_text": "training_text",
    "training": {"steps": 6, "batch_size": 2, "seq_len": 16, "warmup_steps": 2, "checkpoints": 3},
}
FINETUNE = {
    "path": "unused",
    "seed_name": "unit-finetuned",
    "finetune_from": "base",
    "training_text": "instruction_text",
    "training": {"steps": 3, "batch_size": 2, "seq_len": 16, "warmup_steps": 1, "checkpoints": 2},
}
SPECS = {"base": TINY, "qa": FINETUNE}


@pytest.fixture(scope="module")
def text(python_corpus_a) -> list[str]:
    """Any real prose works for these tests (the reference manual, 20 topics)."""
    return python_corpus_a[:20]


@pytest.fixture(scope="module")
def base_build(tmp_path_factory, text):
    directory = tmp_path_factory.mktemp("trained") / "base"
    record = ensure_trained_checkpoints(directory, trained_recipe("base", SPECS), text)
    return directory, record


def test_recipe_fills_defaults_and_fine_tuning_inherits_its_base():
    base = trained_recipe("base", SPECS)
    assert base["rms_norm_eps"] == 1e-5 and base["training"]["learning_rate"] == 3e-3
    assert "path" not in base
    qa = trained_recipe("qa", SPECS)
    assert qa["base"] == base and qa["finetune_from"] == "base"
    assert set(qa) == {"seed_name", "finetune_from", "base", "training_text", "training"}
    # the fine-tuned recipe's hash follows its base's
    changed = {**SPECS, "base": {**TINY, "hidden_size": 32}}
    assert recipe_sha256(trained_recipe("qa", changed)) != recipe_sha256(qa)


def test_recipe_hash_is_sha256_of_canonical_json():
    recipe = {"b": 1, "a": [1.5, "x"]}
    expected = hashlib.sha256(b'{"a":[1.5,"x"],"b":1}').hexdigest()
    assert recipe_sha256(recipe) == expected


@pytest.mark.parametrize(
    ("specs", "name", "message"),
    [
        ({"qa": {**FINETUNE, "hidden_size": 8}, "base": TINY}, "qa", "also sets"),
        ({"qa": {**FINETUNE, "finetune_from": "nope"}, "base": TINY}, "qa", "not another"),
        ({"base": {k: v for k, v in TINY.items() if k != "training_text"}}, "base", "names no"),
        ({"base": {**TINY, "hiden_size": 8}}, "base", r"Unknown keys \['hiden_size'\]"),
        ({"base": {**TINY, "training": {"steps": 0}}}, "base", "training.steps"),
    ],
)
def test_bad_recipes_are_refused_with_the_fix(specs, name, message):
    with pytest.raises(ConfigurationError, match=message):
        trained_recipe(name, specs)


def test_build_writes_every_step_and_a_record(base_build):
    directory, record = base_build
    steps = checkpoint_steps(6, 3)
    assert sorted(int(s) for s in record["steps"]) == steps == [0, 1, 6]  # geomspace(1, 6, 2)
    for step in steps:
        folder = step_directory(directory, step)
        assert (folder / "config.json").exists() and (folder / "tokenizer.json").exists()
        assert record["steps"][str(step)] == directory_sha256(folder)
    on_disk = json.loads((directory / TRAINING_RECORD).read_text())
    assert on_disk == record
    assert record["final_step"] == 6 and len(record["losses"]) == 6
    assert record["recipe_sha256"] == recipe_sha256(trained_recipe("base", SPECS))
    assert not list(directory.parent.glob(".base-*"))  # no staging left


def test_the_same_recipe_twice_gives_byte_identical_checkpoints(base_build, tmp_path, text):
    directory, record = base_build
    again = ensure_trained_checkpoints(tmp_path / "again", trained_recipe("base", SPECS), text)
    assert again["steps"] == record["steps"]  # content sha256 of every step's files
    assert again["losses"] == record["losses"]


def test_an_existing_build_is_reused_and_another_recipe_is_refused(base_build, text):
    directory, record = base_build
    before = {p: p.stat().st_mtime_ns for p in directory.rglob("*")}
    assert ensure_trained_checkpoints(directory, trained_recipe("base", SPECS), text) == record
    assert reusable_record(directory, trained_recipe("base", SPECS)) == record
    other = trained_recipe("base", {"base": {**TINY, "training": {**TINY["training"], "steps": 7}}})
    with pytest.raises(CheckpointError, match="another recipe"):
        ensure_trained_checkpoints(directory, other, text)
    with pytest.raises(CheckpointError, match="another recipe"):
        reusable_record(directory, other)
    assert {p: p.stat().st_mtime_ns for p in directory.rglob("*")} == before  # untouched


def test_other_text_under_the_same_recipe_is_refused(base_build, text):
    directory, _ = base_build
    with pytest.raises(CheckpointError, match="trained on other text"):
        ensure_trained_checkpoints(directory, trained_recipe("base", SPECS), text[:10])


def test_a_folder_not_built_by_training_is_never_overwritten(tmp_path, text):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="holds no TRAINING.json"):
        ensure_trained_checkpoints(folder, trained_recipe("base", SPECS), text)
    assert [p.name for p in folder.iterdir()] == ["config.json"]


def test_an_interrupted_build_leaves_nothing_and_its_staging_is_removed_later(tmp_path, text):
    directory = tmp_path / "base"

    def interrupt(step, loss, tokens_per_second):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_trained_checkpoints(
            directory, trained_recipe("base", SPECS), text, progress=interrupt
        )
    assert not directory.exists() and not list(tmp_path.glob(".base-*"))
    # a staging folder left by a killed process is removed, never loaded, by the next build
    stale = tmp_path / ".base-killed"
    (stale / "step-000000").mkdir(parents=True)
    (stale / "step-000000" / "config.json").write_text("half-written")
    record = ensure_trained_checkpoints(directory, trained_recipe("base", SPECS), text)
    assert not stale.exists() and record["final_step"] == 6


def test_a_diverging_recipe_writes_nothing(tmp_path, text):
    settings = {**TINY["training"], "learning_rate": 1.0e12, "grad_clip": 1.0e30}
    recipe = trained_recipe("base", {"base": {**TINY, "training": settings}})
    with pytest.raises(TrainingError, match="Lower training.learning_rate"):
        ensure_trained_checkpoints(tmp_path / "base", recipe, text)
    assert list(tmp_path.iterdir()) == []  # no staging folder, and the lock file is removed


def test_text_too_short_or_empty_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusError, match="is empty"):
        ensure_trained_checkpoints(tmp_path / "b", trained_recipe("base", SPECS), ["", "  "])
    with pytest.raises(CorpusError, match="fewer than one batch"):
        ensure_trained_checkpoints(tmp_path / "b", trained_recipe("base", SPECS), ["a b c"])
    assert not (tmp_path / "b").exists()


def test_fine_tuning_starts_from_the_base_final_step_with_its_tokenizer(base_build, tmp_path):
    base_directory, base_record = base_build
    qa = trained_recipe("qa", SPECS)
    questions = [f"Question: What does f{i} do?\nAnswer: It returns {i}." for i in range(40)]
    record = ensure_trained_checkpoints(tmp_path / "qa", qa, questions, base_directory)
    start = step_directory(tmp_path / "qa", 0)
    base_final = step_directory(base_directory, base_record["final_step"])
    for name in ("model.safetensors", "tokenizer.json"):
        assert (start / name).read_bytes() == (base_final / name).read_bytes()
    assert record["final_step"] == 3
    with pytest.raises(CheckpointError, match="not trained yet"):
        ensure_trained_checkpoints(tmp_path / "qa2", qa, questions, tmp_path / "missing")


def test_resolve_step_final_and_saved_steps_only():
    record = {"steps": {"0": "a", "1": "b", "6": "c"}}
    assert resolve_step(record, "final", "base") == 6
    assert resolve_step(record, None, "base") == 6
    assert resolve_step(record, 0, "untrained") == 0
    with pytest.raises(ConfigurationError, match=r"models.untrained.step = 5 .*\[0, 1, 6\]"):
        resolve_step(record, 5, "untrained")
    assert Path(step_directory("x", 6)).name == "step-000006"
