"""Shared test fixtures. Every test runs offline: no Hub access, no Kedro telemetry."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import queue  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures"

#: A recipe small enough for unit tests (seconds), same architecture as the embedded default.
SMALL_RECIPE = {
    "seed_name": "test-tiny-llama",
    "tokenizer_vocab_size": 512,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}


#: The smallest architecture the tests build (seconds to train): 2 layers of width 16 and a
#: 300-token byte-level vocabulary (256 bytes + merges); recipes add their seed and training.
TINY_ARCHITECTURE = {
    "tokenizer_vocab_size": 300,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "max_position_embeddings": 32,
}


@pytest.fixture(scope="session")
def python_corpus_a() -> list[str]:
    from avalanche_kedro.measure.corpora import pydoc_topics

    return pydoc_topics()


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory, python_corpus_a) -> dict:
    """Manifest of a small embedded-recipe checkpoint built once per test session."""
    from avalanche_kedro.measure.checkpoints import resolve_checkpoint

    directory = tmp_path_factory.mktemp("checkpoints") / "small-llama"
    return resolve_checkpoint(
        "test", {"checkpoint": str(directory), "embedded": SMALL_RECIPE}, python_corpus_a
    )


@pytest.fixture(scope="session")
def small_model(small_checkpoint):
    """The small checkpoint loaded on the CPU in fp32 (a real LlamaForCausalLM)."""
    from avalanche_kedro.measure.checkpoints import load_model

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return load_model(small_checkpoint, {"device": "cpu", "dtype": "float32"})


@pytest.fixture(scope="session")
def small_windows(small_model, python_corpus_a):
    """Token windows [N=24, T=32] of corpus A under the small model's tokenizer."""
    from avalanche_kedro.measure.windows import cut_windows, tokenize_stream

    stream = tokenize_stream(python_corpus_a, small_model.tokenizer, max_tokens=24 * 32)
    return cut_windows(stream.ids, 32)[:24]


def copy_project(tmp_path: Path, trained_models: Path | None = None) -> Path:
    """A fresh project directory: pyproject.toml, conf/ (no local), the raw ARC file, empty src/.

    ``trained_models``: a ``data/06_models`` folder whose trained embedded checkpoints (folders
    with a ``TRAINING.json``) are copied in, so the project's training pipeline reuses them
    instead of training again (see the ``trained_models`` fixture).

    The package itself is the installed one. ``conf/local/parameters.yml`` turns the progress
    bars off: a user's local override that, like ``--params``, must change only the keys it
    names (soft merge), leaving batch_size, dtype, ... from conf/base.
    """
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROJECT_ROOT / "pyproject.toml", project)
    shutil.copy(PROJECT_ROOT / ".telemetry", project)
    shutil.copytree(PROJECT_ROOT / "conf", project / "conf", ignore=shutil.ignore_patterns("local"))
    (project / "conf" / "local").mkdir()
    (project / "conf" / "local" / "parameters.yml").write_text("runtime:\n  progress: false\n")
    shutil.copytree(PROJECT_ROOT / "data" / "01_raw", project / "data" / "01_raw")
    (project / "src").mkdir()  # the package comes from the environment
    if trained_models is not None:
        for folder in sorted(trained_models.iterdir()):
            if (folder / "TRAINING.json").exists():
                shutil.copytree(folder, project / "data" / "06_models" / folder.name)
    return project


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory) -> Path:
    """``data/06_models`` of a project whose training pipeline trained the default embedded
    models once for the whole test session (``kedro run --pipelines training``, ~1.5 min).

    Projects made with ``copy_project(..., trained_models=...)`` reuse these checkpoints: the
    training pipeline checks the recipe, the Python version and every step's content hash, so
    a copy is as good as a build and no test trains the default models twice.
    """
    project = copy_project(tmp_path_factory.mktemp("trained-models"))
    run_kedro(project, "run", "--pipelines", "training")
    return project / "data" / "06_models"


def kedro_env(**extra: str) -> dict[str, str]:
    """The environment of a ``python -m kedro`` subprocess: offline, no telemetry, unbuffered,
    and log lines wide enough (``COLUMNS``) that Kedro's rich handler does not wrap them."""
    return dict(
        os.environ,
        KEDRO_DISABLE_TELEMETRY="1",
        HF_HUB_OFFLINE="1",
        PYTHONUNBUFFERED="1",
        COLUMNS="400",
        **extra,
    )


def kedro_process(project: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m kedro <args>`` in ``project``, whatever its exit status."""
    return subprocess.run(
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        env=kedro_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_kedro(project: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python -m kedro <args>`` in ``project``; fails the test with its output on error."""
    result = kedro_process(project, *args, timeout=timeout)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def start_kedro(project: Path, *args: str) -> tuple[subprocess.Popen, queue.Queue]:
    """``python -m kedro <args>`` started in ``project`` (stderr into stdout); a queue receives
    its output line by line, then None when it ends, so a test can act on a log line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kedro", *args],
        cwd=project,
        env=kedro_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return process, lines


@pytest.fixture(scope="session")
def e2e_project(tmp_path_factory, trained_models) -> Path:
    """A project copy after three real ``kedro run``s on the embedded default (minutes).

    Copies in the session's trained embedded models (``trained_models``), runs the deprecated
    ``--pipeline`` flag (training: the copied checkpoints are reused), then ``--pipelines``
    (capture; then events, cascades, controls, calibration), then plain ``kedro run`` (the
    default pipeline: everything,
    replication and reporting included), then ``--pipelines replication,reporting`` again, so
    every dataset has one or two versions. Shared by
    every test module that needs a finished project (``test_kedro_run``, ``test_kedro_viz``,
    ``test_explore_notebook``); they must only add files to it, never change its data.
    """
    project = copy_project(tmp_path_factory.mktemp("e2e"), trained_models)
    run_kedro(project, "run", "--pipeline", "training", "--params", "runtime.device=cpu")
    run_kedro(project, "run", "--pipelines", "capture", "--params", "runtime.device=cpu")
    run_kedro(
        project,
        "run",
        "--pipelines",
        "events,cascades,controls,calibration",
        "--params",
        "runtime.device=cpu",
    )
    run_kedro(project, "run", "--params", "runtime.device=cpu")
    # same parameters as the run before (the device is part of the config hash)
    run_kedro(
        project, "run", "--pipelines", "replication,reporting", "--params", "runtime.device=cpu"
    )
    return project


@pytest.fixture
def use_params(monkeypatch):
    """Make the registry read the project's conf with these runtime parameters."""

    def use(runtime_params=None):
        from kedro.config import OmegaConfigLoader

        from avalanche_kedro.framework import active_config
        from avalanche_kedro.settings import CONFIG_LOADER_ARGS

        loader = OmegaConfigLoader(
            str(PROJECT_ROOT / "conf"), runtime_params=runtime_params, **CONFIG_LOADER_ARGS
        )
        monkeypatch.setitem(active_config._ACTIVE, "config_loader", loader)
        return loader

    return use
