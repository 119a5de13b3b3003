"""Bad input stops with an error naming the problem and the fix, and leaves nothing half-written.

The issue's list: an unknown architecture, a model path that does not exist, a dataset with
fewer windows than needed, an empty corpus, a rate-matching failure, NaN or inf activations.
Each case is met the way a user meets it: the real capture / events pipelines run by Kedro's
SequentialRunner on the project catalog (re-rooted in a temporary directory), with real
checkpoints written by ``save_pretrained`` - no mocks. Every case runs in a copy of a workspace
in which the good pipeline already ran once, and checks

(a) the specific error class;
(b) a message that names the offending thing (path, model type, corpus and counts, layer,
    cells) and says how to fix it;
(c) nothing half-written: the failing node saved no version of its outputs (Kedro saves only
    after a node returns), every file of the earlier run is byte-identical, only the outputs of
    the nodes that succeeded before the failure gained a version, no raster scratch or
    checkpoint staging directory is left, and a checkpoint that failed to build does not exist.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from kedro.runner import SequentialRunner

from avalanche_kedro.core import paths
from avalanche_kedro.core.errors import (
    CheckpointError,
    CorpusError,
    NonFiniteActivationError,
    RateMatchingError,
    UnsupportedArchitectureError,
)
from avalanche_kedro.framework.datasets import HubDataset
from avalanche_kedro.measure.adapters import SUPPORTED_MODEL_TYPES
from avalanche_kedro.measure.checkpoints import load_model, resolve_checkpoint
from avalanche_kedro.measure.corpora import pydoc_topics
from avalanche_kedro.measure.gain import MLP_GLOBAL
from avalanche_kedro.measure.moments import UnitMoments
from avalanche_kedro.measure.rasters import A_FILE, RasterWriter
from avalanche_kedro.measure.sweep import (
    GainSetting,
    accumulate_moments,
    count_baseline_exceedances,
    fit_thresholds,
    record_rasters,
)
from avalanche_kedro.measure.thresholds import SPIKE_DEFS
from avalanche_kedro.measure.windows import slice_windows, tokenize_stream
from avalanche_kedro.pipelines import capture, events
from tests.conftest import SMALL_RECIPE
from tests.pipelines.conftest import project_catalog, run_capture_and_events, small_parameters

SEQ_LEN, N_LAYERS, D_FF = 32, 4, 64
RUNTIME = {"device": "cpu", "dtype": "float32"}
CAPTURE_OUTPUTS = {
    "model_manifest",
    "windows",
    "slice_manifest",
    "instrumentation_report",
    "unit_moments",
    "calibration_summary",
    "baseline_rates",
    "rate_targets",
}
EVENTS_OUTPUTS = {"conditions_A", "threshold_fit", "event_rasters_A", "tau_table", "events_summary"}


# --------------------------------------------------------------------------------------------
# Workspace: a copy of a good run, its file snapshot, and the checks of a clean failure


@pytest.fixture(scope="module")
def good_root(tmp_path_factory) -> Path:
    """Capture + events ran once, successfully, on the small configuration (never modified)."""
    root = tmp_path_factory.mktemp("good-run")
    run_capture_and_events(root)
    return root


def good_checkpoint(good_root: Path) -> Path:
    return good_root / "models" / "small-llama"


def _snapshot(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@dataclass
class Workspace:
    root: Path
    before: dict[str, str]

    def mark(self) -> None:
        """Take the snapshot again (after the test itself changed the workspace)."""
        self.before = _snapshot(self.root)

    def versions(self, name: str) -> list[str]:
        folders = [p for p in (self.root / "data").glob(f"*/base/{name}*") if p.is_dir()]
        assert len(folders) <= 1, folders
        return sorted(v.name for v in folders[0].iterdir()) if folders else []

    def assert_failed_cleanly(self, *, saved: set[str], failed: set[str]) -> None:
        """Only the datasets in ``saved`` (outputs of nodes that succeeded before the failure)
        gained a version; none of ``failed`` did; every earlier file is byte-identical; no
        scratch or staging directory is left."""
        after = _snapshot(self.root)
        changed = sorted(p for p, digest in self.before.items() if after.get(p) != digest)
        assert changed == [], f"earlier artifacts changed or vanished: {changed}"
        added = sorted(set(after) - set(self.before))
        assert {_dataset_of(p) for p in added} == saved, added
        for name in saved:
            assert len(self.versions(name)) == 2, name  # the good run's and this run's
        for name in failed:
            before = {p.split("/")[4] for p in self.before if _dataset_of(p) == name}
            assert set(self.versions(name)) == before, f"{name} gained a version"
        scratch = self.root / "scratch"
        assert not scratch.exists() or list(scratch.iterdir()) == []
        hidden = [p for p in self.root.rglob(".*")]
        assert hidden == [], f"staging directories left behind: {hidden}"


def _dataset_of(relative: str) -> str:
    """``data/<layer>/base/<name>.<ext>/<version>/...`` -> ``<name>``."""
    parts = relative.split("/")
    if parts[0] != "data" or len(parts) < 5:
        return relative  # anything outside the versioned datasets shows up as itself
    return parts[3].split(".")[0]


@pytest.fixture
def workspace(good_root, tmp_path) -> Workspace:
    root = tmp_path / "workspace"
    shutil.copytree(good_root, root)
    return Workspace(root, _snapshot(root))


def run(
    root: Path,
    *,
    model: dict | None = None,
    params: dict | None = None,
    datasets: dict | None = None,
    pipelines: tuple[str, ...] = ("capture",),
    only_node: str | None = None,
) -> None:
    """Run pipelines on the workspace's catalog; ``datasets`` replace catalog entries."""
    parameters = small_parameters(root)
    if model is not None:
        parameters["models"]["base"] = model
    for key, value in (params or {}).items():
        parameters[key] = value
    catalog = project_catalog(root, parameters)
    for name, value in (datasets or {}).items():
        catalog[name] = value
    factories = {"capture": capture.create_pipeline, "events": events.create_pipeline}
    pipeline = factories[pipelines[0]](["base"])
    for name in pipelines[1:]:
        pipeline += factories[name](["base"])
    if only_node is not None:
        pipeline = pipeline.only_nodes(only_node)
    SequentialRunner().run(pipeline, catalog)


def local(directory: Path | str) -> dict:
    """Model parameters of a plain local checkpoint (no embedded recipe)."""
    return {"checkpoint": str(directory), "revision": None, "trust_remote_code": False}


def local_corpus(builder: str, path: Path) -> HubDataset:
    """A corpus catalog entry on a local file, as a user would write it in catalog.yml."""
    return HubDataset(dataset_name=builder, filepath=str(path), dataset_kwargs={"split": "train"})


def message_of(info) -> str:
    message = str(info.value)
    assert "How to fix:" in message
    return message


def latest(root: Path, name: str) -> Path:
    matches = sorted(root.glob(f"data/*/base/{name}.*/*/{name}.*"))
    assert matches, name
    return matches[-1]


# --------------------------------------------------------------------------------------------
# Real checkpoints with one thing wrong


def save_variant(good_root: Path, directory: Path, edit) -> Path:
    """The good run's checkpoint with ``edit(model)`` applied, saved with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = good_checkpoint(good_root)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    with torch.no_grad():
        edit(model)
    model.save_pretrained(directory)
    AutoTokenizer.from_pretrained(source).save_pretrained(directory)
    return directory


def poison(value: float):
    """One weight of layer 2's up projection set to ``value``: u of layer 2 becomes non-finite."""

    def edit(model) -> None:
        model.model.layers[2].mlp.up_proj.weight[0, 0] = value

    return edit


@pytest.fixture(scope="module")
def nan_checkpoint(good_root, tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("nan-model") / "nan-llama"
    save_variant(good_root, directory, poison(float("nan")))
    return resolve_checkpoint("base", local(directory))


# --------------------------------------------------------------------------------------------
# 1. Unknown architecture


def _bloom(good_root: Path, directory: Path) -> None:
    """A real tiny BloomForCausalLM (a causal LM family without an adapter)."""
    from transformers import AutoTokenizer, BloomConfig, BloomForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(good_checkpoint(good_root))
    config = BloomConfig(vocab_size=len(tokenizer), hidden_size=32, n_layer=2, n_head=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BloomForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)


def _unknown_to_transformers(good_root: Path, directory: Path) -> None:
    """A complete checkpoint whose config names a family transformers does not know."""
    shutil.copytree(good_checkpoint(good_root), directory)
    config = json.loads((directory / "config.json").read_text())
    config.update(model_type="avalanche_test_lm", architectures=["AvalancheTestLMForCausalLM"])
    (directory / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("builder", "model_type"),
    [(_bloom, "bloom"), (_unknown_to_transformers, "avalanche_test_lm")],
    ids=["bloom", "unknown-to-transformers"],
)
def test_unknown_architecture_stops_at_resolve(workspace, good_root, tmp_path, builder, model_type):
    directory = tmp_path / f"{model_type}-model"
    builder(good_root, directory)
    with pytest.raises(UnsupportedArchitectureError) as info:
        run(workspace.root, model=local(directory))
    message = message_of(info)
    assert f"Model type '{model_type}' has no adapter" in message
    assert all(supported in message for supported in SUPPORTED_MODEL_TYPES)
    assert "adapters.py" in message
    workspace.assert_failed_cleanly(saved=set(), failed=CAPTURE_OUTPUTS)


# --------------------------------------------------------------------------------------------
# 2. A model path that does not exist, an incomplete one, a Hub id while offline


@pytest.mark.parametrize("kind", ["relative", "absolute"])
def test_missing_model_path(workspace, tmp_path, monkeypatch, kind):
    # As in a notebook: the Kedro session knows the project root, the shell is elsewhere.
    monkeypatch.setitem(paths._ROOT, "project", workspace.root)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    checkpoint = "data/06_models/nope" if kind == "relative" else str(tmp_path / "nope")
    with pytest.raises(CheckpointError) as info:
        run(workspace.root, model=local(checkpoint))
    message = message_of(info)
    # a relative directory is relative to the project, wherever Kedro runs from
    expected = workspace.root / checkpoint if kind == "relative" else Path(checkpoint)
    assert f"Model path '{expected}' does not exist" in message
    assert "models.base.checkpoint" in message
    workspace.assert_failed_cleanly(saved=set(), failed=CAPTURE_OUTPUTS)


@pytest.mark.parametrize(
    ("keep", "missing", "present"),
    [
        (["config.json"], ["weights (model.safetensors", "a tokenizer"], []),
        (["config.json", "model.safetensors"], ["a tokenizer"], ["weights", "config.json"]),
        (
            ["model.safetensors", "tokenizer.json", "tokenizer_config.json"],
            ["config.json"],
            ["weights", "a tokenizer"],
        ),
    ],
    ids=["config-only", "no-tokenizer", "no-config"],
)
def test_incomplete_checkpoint_directory(workspace, good_root, tmp_path, keep, missing, present):
    directory = tmp_path / "partial-model"
    directory.mkdir()
    for name in keep:
        shutil.copy(good_checkpoint(good_root) / name, directory / name)
    with pytest.raises(CheckpointError) as info:
        run(workspace.root, model=local(directory))
    message = message_of(info)
    assert f"'{directory}' is incomplete" in message
    listed = message.split("missing", 1)[1].split("How to fix")[0]
    assert all(item in listed for item in missing)
    assert not any(item in listed for item in present)
    assert "save_pretrained" in message
    workspace.assert_failed_cleanly(saved=set(), failed=CAPTURE_OUTPUTS)


def test_hub_id_while_offline(workspace):
    with pytest.raises(CheckpointError) as info:
        run(workspace.root, model=local("someorg/somemodel"))
    message = message_of(info)
    assert "'someorg/somemodel' from the Hugging Face Hub" in message
    assert "HF_HUB_OFFLINE" in message
    workspace.assert_failed_cleanly(saved=set(), failed=CAPTURE_OUTPUTS)


def test_checkpoint_removed_after_capture(workspace):
    """`kedro run --pipelines events` after the checkpoint directory was deleted."""
    manifest = json.loads(latest(workspace.root, "model_manifest").read_text())
    directory = workspace.root / "models" / "small-llama"
    manifest["checkpoint"] = str(directory)  # this workspace's own copy of the checkpoint
    shutil.rmtree(directory)
    workspace.mark()
    with pytest.raises(CheckpointError) as info:
        run(
            workspace.root,
            pipelines=("events",),
            datasets={"base.model_manifest": manifest},
        )
    message = message_of(info)
    assert f"'{directory}' recorded in the model manifest is gone" in message
    assert "kedro run --pipelines capture" in message
    workspace.assert_failed_cleanly(
        saved={"conditions_A"}, failed=EVENTS_OUTPUTS - {"conditions_A"}
    )


# --------------------------------------------------------------------------------------------
# 3. Fewer windows than needed, 4. empty corpora


def _windows_of(records, good_root) -> int:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(good_checkpoint(good_root))
    return int(tokenize_stream(records, tokenizer).ids.size // SEQ_LEN)


def test_corpus_A_with_too_few_windows(workspace, good_root):
    records = [pydoc_topics()[0][:600], "   ", pydoc_topics()[1][:200]]
    available = _windows_of(records, good_root)
    assert 0 < available < 16
    with pytest.raises(CorpusError) as info:
        run(workspace.root, datasets={"corpus_A": records})
    message = message_of(info)
    assert (
        f"Dataset A (corpus_A) yields only {available} windows, but 16 are needed "
        "(8 calibration + 8 analysis)" in message
    )
    assert "catalog entry 'corpus_A'" in message and "windows.seq_len" in message
    workspace.assert_failed_cleanly(
        saved={"model_manifest"}, failed=CAPTURE_OUTPUTS - {"model_manifest"}
    )


def test_corpus_B_file_with_too_few_windows(workspace, good_root, tmp_path):
    path = tmp_path / "tiny_b.jsonl"
    texts = ["A short record.", "Another short record, still far from 128 tokens."]
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    available = _windows_of(texts, good_root)
    corpus = local_corpus("json", path)
    with pytest.raises(CorpusError) as info:
        run(workspace.root, datasets={"corpus_B": corpus})
    message = message_of(info)
    assert (
        f"Dataset B (corpus_B, file {path}) yields only {available} windows, but 4 are needed "
        "(4 eval_b)" in message
    )
    assert "catalog entry 'corpus_B'" in message
    workspace.assert_failed_cleanly(
        saved={"model_manifest"}, failed=CAPTURE_OUTPUTS - {"model_manifest"}
    )


@pytest.mark.parametrize(
    ("name", "source"),
    [
        ("corpus_A", "records"),
        ("corpus_B", "records"),
        ("corpus_B", "empty-jsonl"),
        ("corpus_A", "blank-text-file"),
    ],
)
def test_empty_corpus(workspace, tmp_path, name, source):
    path = None
    if source == "records":
        corpus = ["", "   ", "\n\t\n", None]
    elif source == "empty-jsonl":
        path = tmp_path / "empty.jsonl"
        path.write_text("")  # datasets itself cannot load an empty file
        corpus = local_corpus("json", path)
    else:
        path = tmp_path / "blank.txt"
        path.write_text("\n   \n\n")
        corpus = local_corpus("text", path)
    with pytest.raises(CorpusError) as info:
        run(workspace.root, datasets={name: corpus})
    message = message_of(info)
    role = name[-1]
    where = f"file {path}, " if path else ""  # a file-backed corpus also names its file
    assert f"Corpus '{name}' ({where}dataset {role}) has no non-empty text records" in message
    assert f"catalog entry '{name}'" in message
    workspace.assert_failed_cleanly(
        saved={"model_manifest"}, failed=CAPTURE_OUTPUTS - {"model_manifest"}
    )


@pytest.mark.parametrize(
    "name, saved",
    [("corpus_A", set()), ("corpus_B", {"model_manifest"})],  # the embedded model needs A
)
def test_a_corpus_file_that_does_not_exist(workspace, tmp_path, name, saved):
    from kedro.io import DatasetError

    missing = tmp_path / "nowhere" / "a.txt"
    with pytest.raises(DatasetError) as info:
        run(workspace.root, datasets={name: local_corpus("text", missing)})
    message = message_of(info)
    assert f"The 'text' file {missing} does not exist" in message
    assert "--params corpus_a=" in message
    workspace.assert_failed_cleanly(saved=saved, failed=CAPTURE_OUTPUTS - saved)


def test_embedded_model_cannot_train_its_tokenizer_on_an_empty_corpus(workspace):
    directory = workspace.root / "models" / "fresh-llama"
    model = {**local(directory), "embedded": dict(SMALL_RECIPE)}
    with pytest.raises(CorpusError) as info:
        run(workspace.root, model=model, datasets={"corpus_A": ["", "  \n"]})
    message = message_of(info)
    assert "Corpus A is empty" in message and "corpus_A" in message
    assert not directory.exists()  # no checkpoint half-built (nor a staging sibling: below)
    workspace.assert_failed_cleanly(saved=set(), failed=CAPTURE_OUTPUTS)


# --------------------------------------------------------------------------------------------
# 5. Rate matching that cannot succeed (a real model with a huge tie)


def _silence_half_the_units(model) -> None:
    """gate_proj rows of every other unit set to 0: u = silu(0) * up(x) = 0 exactly, so those
    units are constant, their z is exactly 0, and half of every layer's values tie at 0."""
    for layer in model.model.layers:
        layer.mlp.gate_proj.weight[::2] = 0.0


def test_rate_matching_failure_with_tied_activations(workspace, good_root, tmp_path):
    directory = save_variant(good_root, tmp_path / "tied-llama", _silence_half_the_units)
    # About a quarter of the values have z > 0 and half have z == 0, so for the one-sided
    # definition any target between ~0.25 and ~0.75 puts tau on the tie at 0: at most ~0.25 of
    # the values can exceed it. |z| > 0 for every live unit, so the two-sided cells are fine.
    params = {
        "calibration": {**small_parameters(workspace.root)["calibration"], "target_rates": [0.4]},
        "gain_grid": [1.0],
        "events": {"interventions": {MLP_GLOBAL: "grid"}, "token_shuffle_gains": [1.0]},
    }
    with pytest.raises(RateMatchingError) as info:
        run(workspace.root, model=local(directory), params=params, pipelines=("capture", "events"))
    message = message_of(info)
    assert "Rate matching failed for model role 'base' in 4 of 8" in message
    listing = message.split("Worst cells:")[1].split("This happens")[0]
    rows = [line.split() for line in listing.strip().splitlines()[1:]]
    assert len(rows) == 4
    assert {row[2] for row in rows} == {"SPIKE_ONE_SIDED_POS"}
    assert sorted(int(row[4]) for row in rows) == [0, 1, 2, 3]
    assert all(float(row[-1]) == 0.0 for row in rows)  # tau sits on the tie
    assert all(float(row[6]) < 0.3 < 0.33 < float(row[5]) for row in rows)  # achieved vs r*
    assert "tau = 0" in message and "calibration_summary" in message
    workspace.assert_failed_cleanly(
        saved=CAPTURE_OUTPUTS | {"conditions_A"},
        failed=EVENTS_OUTPUTS - {"conditions_A"},
    )
    # the tie is real: the capture pipeline of this run counted the constant units
    summary = json.loads(latest(workspace.root, "calibration_summary").read_text())
    assert summary["degenerate_units_per_layer"] == [D_FF // 2] * N_LAYERS


# --------------------------------------------------------------------------------------------
# 6. NaN or inf activations


@pytest.mark.parametrize("value", [math.nan, math.inf], ids=["nan", "inf"])
def test_non_finite_weights_stop_the_validate_step(workspace, good_root, tmp_path, value):
    directory = save_variant(good_root, tmp_path / "broken-llama", poison(value))
    with pytest.raises(NonFiniteActivationError) as info:
        run(workspace.root, model=local(directory))
    message = message_of(info)
    # named as what it is (not as hooks that fail to reproduce the model), at the right layer
    assert "Layer 2 produced NaN or inf MLP activations" in message
    assert "validate step" in message and "broken-llama" in message
    assert "checkpoint's weights" in message
    workspace.assert_failed_cleanly(
        saved={"model_manifest", "windows", "slice_manifest"},
        failed=CAPTURE_OUTPUTS - {"model_manifest", "windows", "slice_manifest"},
    )


def test_raster_node_stops_and_removes_its_scratch(workspace, nan_checkpoint):
    """`kedro run --from-nodes base.record_event_rasters` with a model that yields NaN: the
    node's RasterWriter scratch is removed and no raster, tau table or summary is saved."""
    with pytest.raises(NonFiniteActivationError, match="Layer 2 produced NaN") as info:
        run(
            workspace.root,
            pipelines=("events",),
            only_node="base.record_event_rasters",
            datasets={"base.model_manifest": nan_checkpoint},
        )
    message_of(info)
    assert (workspace.root / "scratch").is_dir()  # the node's scratch folder, now empty
    workspace.assert_failed_cleanly(
        saved=set(), failed={"event_rasters_A", "tau_table", "events_summary"}
    )


def test_measurement_passes_stop_on_non_finite_activations(good_root, nan_checkpoint, tmp_path):
    """Every pass stops at the first batch with the layer named, with moments, rate targets
    and thresholds of the clean model."""
    catalog = project_catalog(good_root, small_parameters(good_root))
    windows = catalog.load("base.windows")
    moments = UnitMoments.from_frame(catalog.load("base.unit_moments"))
    rate_targets = catalog.load("base.rate_targets")
    target_rates = sorted(rate_targets["target_rate"].unique())
    loaded = load_model(nan_checkpoint, RUNTIME)
    standardizer = moments.standardizer(loaded.device)
    calibration, _ = slice_windows(windows, "calibration")
    analysis, seq_ids = slice_windows(windows, "analysis")

    with pytest.raises(NonFiniteActivationError, match=r"Layer 2 .* in windows 0\.\.2"):
        accumulate_moments(loaded, calibration, batch_size=3)
    with pytest.raises(NonFiniteActivationError, match=r"Layer 2 .* in windows 0\.\.2"):
        count_baseline_exceedances(loaded, calibration, standardizer, SPIKE_DEFS, 2.5, 3)
    with pytest.raises(NonFiniteActivationError, match=r"Layer 2 .* in windows 0\.\.2"):
        fit_thresholds(
            loaded,
            calibration,
            standardizer,
            rate_targets,
            [GainSetting(MLP_GLOBAL, 1.0)],
            SPIKE_DEFS,
            target_rates,
            batch_size=3,
        )

    fit = catalog.load("base.threshold_fit")
    at_one = fit[(fit["intervention_id"] == MLP_GLOBAL) & (fit["g"] == 1.0)]
    taus = np.stack(
        [
            np.stack(
                [
                    at_one[(at_one["spike_def_id"] == s) & (at_one["target_rate"] == r)]
                    .sort_values("layer")["tau"]
                    .to_numpy(np.float32)
                    for r in target_rates
                ]
            )
            for s in SPIKE_DEFS
        ]
    )
    n_rows = len(SPIKE_DEFS) * len(target_rates)
    writer = RasterWriter(tmp_path / "rasters", range(n_rows), seq_ids, N_LAYERS, SEQ_LEN)
    with pytest.raises(NonFiniteActivationError, match=r"Layer 2 .* in windows 0\.\.2"):
        record_rasters(
            loaded,
            analysis,
            standardizer,
            taus,
            np.arange(n_rows).reshape(len(SPIKE_DEFS), len(target_rates)),
            SPIKE_DEFS,
            GainSetting(MLP_GLOBAL, 1.0),
            writer,
            batch_size=3,
        )
    # The pass leaves the partial raster to its caller; the events node aborts the writer
    # (test_raster_node_stops_and_removes_its_scratch), which removes it.
    assert (tmp_path / "rasters" / A_FILE).exists()
    writer.abort()
    assert not (tmp_path / "rasters").exists()


# --------------------------------------------------------------------------------------------
# Typed parameters (study.params): a bad value in a parameter file stops `kedro run` when Kedro
# builds the parameters, before any node runs or any model loads, naming the key, the file and
# the allowed values.

BAD_PARAMETERS = [
    ("calibration:\n  target_rates: [0.0, 2.0e-5]\n", "calibration.target_rates.0", "(0, 1)"),
    ("calibration:\n  target_rates: [1.0]\n", "calibration.target_rates.0", "(0, 1)"),
    ("gain_grid: []\n", "gain_grid", "includes 1.0"),
    ("gain_grid: [-0.5, 1.0]\n", "gain_grid.0", "greater than 0"),
    ("controls:\n  bootstrap_replicates: 0\n", "controls.bootstrap_replicates", "integer >= 1"),
    ("runtime:\n  batch_size: 0\n", "runtime.batch_size", "integer >= 1"),
    ("windows:\n  seq_len: 1\n", "windows.seq_len", "integer >= 2"),
    ("cascades:\n  adjacencies: [ADJ_6N]\n", "cascades.adjacencies.0", "ADJ_4N and/or ADJ_8N"),
    (
        "calibration:\n  spike_defs: [SPIKE_ALL]\n",
        "calibration.spike_defs.0",
        "SPIKE_TWO_SIDED_ABS",
    ),
    ("cascades:\n  adjacency: [ADJ_8N]\n", "cascades.adjacency", "allowed keys here: adjacencies"),
    ("lens:\n  top_k: many\n", "lens.top_k", "integer >= 1"),
    # checked when the pipelines are registered: lens.enabled decides whether lens nodes exist
    ("lens:\n  enabeld: true\n", "lens.enabeld", "allowed keys here: "),
]


@pytest.mark.parametrize(("text", "key", "allowed"), BAD_PARAMETERS)
def test_bad_parameters_stop_the_run_before_any_model_loads(tmp_path, text, key, allowed):
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from avalanche_kedro.framework.context import ParameterError
    from tests.conftest import copy_project

    project = copy_project(tmp_path)
    (project / "conf" / "local" / "parameters_typo.yml").write_text(text)
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        with pytest.raises(ParameterError) as info:
            session.run()  # every pipeline: each block is checked
    message = str(info.value)
    assert f"  - {key} = " in message
    assert "(from conf/local/parameters_typo.yml)" in message
    assert allowed in message and "How to fix:" in message
    # nothing ran: no model was resolved, loaded or built, no data folder was written
    assert sorted(p.name for p in (project / "data").iterdir()) == ["01_raw"]


def test_a_misspelt_parameter_block_stops_the_run(tmp_path):
    """Kedro checks only the blocks that nodes read; a top-level typo is caught by the registry."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    from avalanche_kedro.framework.context import ParameterError
    from tests.conftest import copy_project

    project = copy_project(tmp_path)
    (project / "conf" / "local" / "parameters_typo.yml").write_text(
        "calibation:\n  target_rates: [1.0e-3]\n"
    )
    bootstrap_project(project)
    with KedroSession.create(project_path=project) as session:
        with pytest.raises(ParameterError) as info:
            session.run()
    message = str(info.value)
    assert (
        "  - calibation (from conf/local/parameters_typo.yml): unknown parameter block" in message
    )
    assert "did you mean calibration?" in message
    assert sorted(p.name for p in (project / "data").iterdir()) == ["01_raw"]
