"""The preflight on real Kedro objects: a pipeline of real nodes and a catalog of the project's
dataset classes, with the parameters as Kedro hands them over.

What each check says is tested where it is defined (tests/measure/test_text_files.py,
test_checkpoint_checks.py); here: which inputs the preflight looks at and which it leaves to
the nodes (Hub ids, checkpoints the project builds, pipelines that do not read a file).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node

from avalanche_kedro.core.errors import CheckpointError, ConfigurationError, CorpusError
from avalanche_kedro.framework.datasets import HubDataset
from avalanche_kedro.framework.preflight import run_preflight


def _identity(*args):
    return args[0]


def _pipeline(*inputs: str) -> Pipeline:
    return Pipeline([node(_identity, list(inputs), "out", name="reads_inputs")])


def _catalog(parameters: dict, **datasets) -> DataCatalog:
    return DataCatalog({"parameters": MemoryDataset(parameters), **datasets})


def _text_file(path: Path, content: bytes) -> HubDataset:
    path.write_bytes(content)
    return HubDataset(dataset_name="text", filepath=str(path), dataset_kwargs={"split": "train"})


RUNTIME = {"runtime": {"device": "cpu", "dtype": "float32"}}


def test_a_good_pipeline_lists_what_it_checked(tmp_path, small_checkpoint):
    corpus = _text_file(tmp_path / "a.txt", "Grüße\nzweite Zeile\n".encode())
    parameters = {**RUNTIME, "models": {"base": {"checkpoint": small_checkpoint["checkpoint"]}}}
    done = run_preflight(
        _pipeline("corpus_A", "params:runtime", "params:models.base"),
        _catalog(parameters, corpus_A=corpus),
        produced=set(),
    )
    assert done == [
        "runtime: cpu, float32",
        f"corpus_A: {tmp_path / 'a.txt'}",
        f"models.base: {small_checkpoint['checkpoint']}",
    ]


def test_a_bad_corpus_file_stops_the_run(tmp_path):
    corpus = _text_file(tmp_path / "a.bin", b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(CorpusError) as info:
        run_preflight(_pipeline("corpus_A"), _catalog(RUNTIME, corpus_A=corpus), produced=set())
    message = str(info.value)
    assert "the file of catalog entry 'corpus_A', is binary" in message
    assert "--params corpus_a=/path/to/file" in message


def test_a_file_some_pipeline_writes_is_not_a_raw_input(tmp_path):
    corpus = _text_file(tmp_path / "a.bin", b"\x00")
    done = run_preflight(
        _pipeline("corpus_A"), _catalog(RUNTIME, corpus_A=corpus), produced={"corpus_A"}
    )
    assert done == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_device_this_machine_lacks_stops_the_run():
    with pytest.raises(ConfigurationError, match="runtime.device is 'cuda' but CUDA"):
        run_preflight(
            _pipeline("params:runtime"),
            _catalog({"runtime": {"device": "cuda", "dtype": "auto"}}),
            produced=set(),
        )
    # a pipeline that does not read runtime (reporting) does not need a device
    assert (
        run_preflight(
            _pipeline("corpus_A"),
            _catalog({"runtime": {"device": "cuda"}}, corpus_A=MemoryDataset(["x"])),
            produced=set(),
        )
        == []
    )


def test_checkpoints_are_checked_unless_the_project_builds_them_or_the_hub_has_them(tmp_path):
    missing = tmp_path / "models" / "nope"
    parameters = {
        "models": {
            "plain": {"checkpoint": str(missing)},
            "trained": {"checkpoint": "data/06_models/tiny-llama-stdlib", "step": 0},
            "embedded": {"checkpoint": str(tmp_path / "e"), "embedded": {"seed_name": "x"}},
            "hub": {"checkpoint": "Qwen/Qwen2.5-7B"},
        },
        "embedded_checkpoints": {"tiny-llama-stdlib": {"path": "data/06_models/tiny-llama-stdlib"}},
    }
    roles = ("trained", "embedded", "hub")
    pipeline = _pipeline(*(f"params:models.{role}" for role in roles))
    assert run_preflight(pipeline, _catalog(parameters), produced=set()) == []
    with pytest.raises(CheckpointError) as info:
        run_preflight(_pipeline("params:models.plain"), _catalog(parameters), produced=set())
    assert f"Model path '{missing}' does not exist (models.plain.checkpoint)" in str(info.value)


def test_windows_longer_than_a_roles_context_stop_before_any_node(small_checkpoint, tmp_path):
    """seq_len against the context of a local checkpoint (its config.json), of a checkpoint
    the project trains (its recipe) and of an inline embedded recipe; Hub ids are left to
    resolve_model."""
    local = small_checkpoint["checkpoint"]  # max_position_embeddings 64
    parameters = {
        "windows": {"seq_len": 65},
        "models": {
            "local": {"checkpoint": local},
            "trained": {"checkpoint": "data/06_models/tiny-llama-stdlib"},
            "inline": {
                "checkpoint": str(tmp_path / "e"),
                "embedded": {"seed_name": "x", "max_position_embeddings": 32},
            },
            "hub": {"checkpoint": "Qwen/Qwen2.5-7B"},
        },
        "embedded_checkpoints": {
            "tiny-llama-stdlib": {
                "path": "data/06_models/tiny-llama-stdlib",
                "max_position_embeddings": 256,
            }
        },
    }
    expected = {
        "local": f"(64 positions: {Path(local) / 'config.json'})",
        "inline": "(32 positions: max_position_embeddings of models.inline.embedded)",
    }
    for role, where in expected.items():
        with pytest.raises(ConfigurationError) as info:
            run_preflight(_pipeline(f"params:models.{role}"), _catalog(parameters), set())
        assert f"windows.seq_len = 65 exceeds the context of model role '{role}' {where}" in str(
            info.value
        )
    fine = ("trained", "hub")
    assert (
        run_preflight(_pipeline(*(f"params:models.{r}" for r in fine)), _catalog(parameters), set())
        == []
    )
    parameters["windows"]["seq_len"] = 257
    with pytest.raises(ConfigurationError, match="embedded_checkpoints.tiny-llama-stdlib"):
        run_preflight(_pipeline("params:models.trained"), _catalog(parameters), set())
    parameters["windows"]["seq_len"] = 64  # equal to the context: fine
    assert run_preflight(_pipeline("params:models.local"), _catalog(parameters), set()) == [
        f"models.local: {local}"
    ]
