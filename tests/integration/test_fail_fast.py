"""Bad input met as a user meets it: ``kedro run`` in a real subprocess, in a project copy.

Each case of issue 16's outside probe (a tokenizer larger than the model's embedding; a corpus
that is binary, Latin-1 or a directory; a ``config.json`` that is not JSON; a misspelt
parameter key; every parameter error) must

* stop with the project's own error: ``Error (<class>): <problem>`` and ``How to fix: ...``,
  exit status 1, and no Python traceback (``--verbose`` shows one);
* fail fast: before any node runs and before any model is loaded (the log has no
  "Running node" and no "Loaded ..." line), while a good run logs its preflight before its
  first node and its first model load;
* leave ``data/`` exactly as it was: the sha256 of every file before and after, and no file
  added (a preflight failure writes no run manifest either).

The project is a copy with the session's trained checkpoints whose training pipeline ran once,
so ``data/`` holds real versioned artifacts; the local_model environment points at the trained
base model's final step and at corpus files this module writes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from avalanche_kedro.core.threads import available_cores
from avalanche_kedro.measure.corpora import pydoc_topics
from tests.conftest import copy_project, kedro_process, run_kedro

RICH_TRACEBACK = "Traceback (most recent call last)"


@pytest.fixture(scope="module")
def project(tmp_path_factory, trained_models) -> Path:
    project = copy_project(tmp_path_factory.mktemp("fail-fast"), trained_models)
    run_kedro(project, "run", "--pipelines", "training", "--params", "runtime.device=cpu")
    return project


@pytest.fixture(scope="module")
def files(project, tmp_path_factory) -> dict[str, Path]:
    """A good checkpoint and corpora for the local_model environment, and the bad variants."""
    folder = tmp_path_factory.mktemp("inputs")
    record = json.loads((project / "data/06_models/tiny-llama-stdlib/TRAINING.json").read_text())
    final = max(int(step) for step in record["steps"])
    checkpoint = project / f"data/06_models/tiny-llama-stdlib/step-{final:06d}"
    assert checkpoint.is_dir(), checkpoint
    topics = pydoc_topics()
    good_a, good_b = folder / "a.txt", folder / "b.txt"
    good_a.write_text("\n".join(t.replace("\n", " ") for t in topics[:60]) + "\n")
    good_b.write_text("\n".join(t.replace("\n", " ") for t in topics[60:90]) + "\n")
    binary = folder / "corpus.bin"
    binary.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 64)  # a zip header, then bytes
    latin = folder / "latin1.txt"
    latin.write_bytes(("Café au lait, crème brûlée.\n" * 200).encode("latin-1"))
    directory = folder / "texts"
    directory.mkdir()
    shutil.copy(good_a, directory / "part1.txt")
    broken_json = folder / "broken-json-model"
    shutil.copytree(checkpoint, broken_json)
    (broken_json / "config.json").write_text('{"model_type": "llama", "vocab_size": 4096,,}')
    vocab = folder / "vocab-mismatch-model"
    shutil.copytree(checkpoint, vocab)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(vocab)
    tokenizer.add_tokens([f"<added_{i}>" for i in range(10)])
    tokenizer.save_pretrained(vocab)
    return {
        "arc": project / "data" / "01_raw" / "arc_embedded.jsonl",
        "checkpoint": checkpoint,
        "a": good_a,
        "b": good_b,
        "binary": binary,
        "latin": latin,
        "directory": directory,
        "broken_json": broken_json,
        "vocab": vocab,
        "vocab_size": len(tokenizer),
    }


def local_model(files: dict, **overrides: Path | str) -> list[str]:
    values = {
        "checkpoint": files["checkpoint"],
        "corpus_a": files["a"],
        "corpus_b": files["b"],
        "arc_jsonl": files["arc"],
        "seq_len": 64,
        "n_calibration": 4,
        "n_raster": 4,
        "n_eval_b": 2,
        **overrides,
    }
    params = ",".join(f"{key}={value}" for key, value in values.items())
    return ["--env", "local_model", "--params", f"{params},runtime.device=cpu"]


def kedro(project: Path, *args: str) -> subprocess.CompletedProcess:
    return kedro_process(project, "run", *args, timeout=600)


def snapshot(project: Path) -> dict[str, str]:
    root = project / "data"
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# (case id, arguments given the files, error class, phrases the message must hold)
CASES = [
    (
        "vocabulary-mismatch",
        lambda f: local_model(f, checkpoint=f["vocab"]),
        "CheckpointError",
        lambda f: [
            f"The tokenizer of '{f['vocab']}' has {f['vocab_size']} token ids but the model's "
            "embedding has only 4096 rows",
            "resize_token_embeddings",
        ],
    ),
    (
        "corpus-binary",
        lambda f: local_model(f, corpus_a=f["binary"]),
        "CorpusError",
        lambda f: [f"{f['binary']}, the file of catalog entry 'corpus_A', is binary", "byte 4"],
    ),
    (
        "corpus-latin-1",
        lambda f: local_model(f, corpus_a=f["latin"]),
        "CorpusError",
        lambda f: [f"{f['latin']}, the file of catalog entry 'corpus_A', is not UTF-8", "iconv"],
    ),
    (
        "corpus-directory",
        lambda f: local_model(f, corpus_b=f["directory"]),
        "CorpusError",
        lambda f: [f"{f['directory']}, the file of catalog entry 'corpus_B', is a directory"],
    ),
    (
        "config-json-invalid",
        lambda f: local_model(f, checkpoint=f["broken_json"]),
        "CheckpointError",
        lambda f: [
            f"{f['broken_json'] / 'config.json'} (models.local.checkpoint) is not valid JSON",
            "line 1, column 44",  # the 43 characters up to "4096," then the second comma
        ],
    ),
    (
        "seq-len-over-the-context",
        lambda f: ["--params", "windows.seq_len=512"],
        "ConfigurationError",
        lambda f: [
            "windows.seq_len = 512 exceeds the context of model role 'base' (256 positions: "
            "max_position_embeddings of embedded_checkpoints.tiny-llama-stdlib)",
            "Set windows.seq_len to at most 256",
        ],
    ),
    (
        "seq-len-over-a-local-checkpoint-context",
        lambda f: local_model(f, seq_len=512),
        "ConfigurationError",
        lambda f: [
            "windows.seq_len = 512 exceeds the context of model role 'local' (256 positions: "
            f"{f['checkpoint'] / 'config.json'})",
            "Set windows.seq_len to at most 256",
        ],
    ),
    (
        "parameter-key-typo",
        lambda f: ["--params", "windows.seqlen=64"],
        "ParameterError",
        lambda f: ["windows.seqlen = 64 (from --params): unknown key", "seq_len"],
    ),
    (
        "target-rate-zero",
        lambda f: ["--params", "calibration.target_rates=[0.0]"],
        "ParameterError",
        lambda f: ["calibration.target_rates"],
    ),
    (
        "gain-grid-empty",
        lambda f: ["--params", "gain_grid=[]"],
        "ParameterError",
        lambda f: ["gain_grid"],
    ),
    (
        "gain-grid-negative",
        lambda f: ["--params", "gain_grid=[-0.5]"],
        "ParameterError",
        lambda f: ["gain_grid.0 = -0.5", "greater than 0"],
    ),
    (
        "device-cuda-without-cuda",
        lambda f: ["--params", "runtime.device=cuda"],
        "ConfigurationError",
        lambda f: ["runtime.device is 'cuda' but CUDA is not available", "auto or cpu"],
    ),
    (
        "dtype-unknown",
        lambda f: ["--params", "runtime.dtype=float13"],
        "ParameterError",
        lambda f: ["runtime.dtype = 'float13'"],
    ),
    (
        "batch-size-zero",
        lambda f: ["--params", "runtime.batch_size=0"],
        "ParameterError",
        lambda f: ["runtime.batch_size = 0"],
    ),
    (
        "torch-threads-zero",
        lambda f: ["--params", "runtime.torch_threads=0"],
        "ParameterError",
        lambda f: ["runtime.torch_threads = 0 (from --params)", "greater than or equal to 1"],
    ),
    (
        "torch-threads-over-cores",
        lambda f: ["--params", "runtime.torch_threads=100000"],
        "ParameterError",
        lambda f: [
            "runtime.torch_threads = 100000 (from --params)",
            f"100000 threads exceed the {available_cores()} cores",
            f"set 1 to {available_cores()}, or null",
        ],
    ),
]


@pytest.mark.parametrize(
    ("arguments", "error", "phrases"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_stops_fast_and_clearly_and_changes_nothing(
    project, files, arguments, error, phrases, request
):
    if "cuda" in request.node.callspec.id and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    before = snapshot(project)
    result = kedro(project, *arguments(files))
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    assert f"Error ({error}): " in result.stderr, output[-3000:]
    assert "How to fix: " in result.stderr
    for phrase in phrases(files):
        assert phrase in " ".join(output.split()), (phrase, output[-3000:])
    assert RICH_TRACEBACK not in output and "Traceback" not in output
    # fail fast: nothing ran, nothing loaded
    assert "Running node" not in output and "Loaded " not in output
    assert snapshot(project) == before  # every file identical, none added


def test_verbose_shows_the_traceback(project, files):
    before = snapshot(project)
    result = kedro(project, *local_model(files, corpus_a=files["binary"]), "--verbose")
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" in output and "CorpusError" in output
    assert snapshot(project) == before


def test_a_good_run_logs_its_preflight_before_the_first_node_and_model_load(project, files):
    """The log order behind "fail fast": preflight, then nodes, then the first model load."""
    # training too: in this environment (no embedded roles) it rewrites embedded_models,
    # which capture reads, for this configuration (the saved one was made for conf/base)
    result = kedro(project, *local_model(files), "--pipelines", "training,capture")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    lines = output.splitlines()

    def first(text: str) -> int:
        return next(i for i, line in enumerate(lines) if text in line)

    preflight = first("Preflight passed before any model was loaded")
    assert "corpus_A: " in " ".join(" ".join(lines[preflight : preflight + 6]).split())
    assert first("Preflight passed") < first("Running node") < first("Loaded ")
