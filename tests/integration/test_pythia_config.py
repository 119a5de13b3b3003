"""The pythia environment (``conf/pythia``): its constants, and its loading code offline.

The real run needs the Hub (six branches of EleutherAI/pythia-70m-deduped, WikiText-103, C4,
ARC) and a GPU. What runs here is everything between the configuration and the numbers: the
config loader on conf/pythia, the training pipeline's decision to train nothing, and the
capture pipeline run by Kedro for all six roles on tiny real ``GPTNeoXForCausalLM`` stand-ins
laid out as a genuine Hugging Face cache (one branch per step, read with ``HF_HUB_OFFLINE=1``).
Then the two bad inputs of revision integrity: a revision that does not exist, and two branches
serving identical weights.

No test here may touch the network: every test runs inside :func:`no_network`.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import numpy as np
import pytest
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from avalanche_kedro.core.errors import CheckpointError
from avalanche_kedro.framework.datasets import HubDataset
from avalanche_kedro.measure import checkpoints
from avalanche_kedro.measure.checkpoints import load_model
from avalanche_kedro.measure.forward import validate_instrumentation
from avalanche_kedro.pipelines import capture
from avalanche_kedro.pipelines.roles import check_roles
from avalanche_kedro.pipelines.training.nodes import recipes_in_use, train_embedded_models
from avalanche_kedro.study.params import CalibrationParams
from avalanche_kedro.study.replication import ReplicationError, check_distinct_weights
from avalanche_kedro.study.trajectory import check_series, resolved_steps
from tests.conftest import PROJECT_ROOT
from tests.measure.hub_cache import (
    D_FF,
    PYTHIA,
    add_revision,
    build_pythia_cache,
    commit_of,
    copy_cache,
    no_network,
    use_cache,
)
from tests.pipelines.conftest import project_catalog

ROLES = ["step0", "step512", "step1000", "step8000", "step33000", "step143000"]
STEPS = [0, 512, 1000, 8000, 33000, 143000]
#: SPEC §8, the paper's gain grid; SPEC §3, the paper's rates at Qwen2.5-7B's d_ff.
SPEC_GAIN_GRID = [0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3]
PAPER_RATES, PAPER_D_FF, PYTHIA_70M_D_FF = [1e-5, 2e-5, 4e-5, 8e-5], 18944, 2048
CORPORA = ("corpus_A", "corpus_B", "arc_questions")


@pytest.fixture(autouse=True)
def offline():
    with no_network():
        yield


def loader(env: str) -> OmegaConfigLoader:
    # Exactly as `kedro run --env <env>` builds it (the project's settings included).
    from avalanche_kedro.settings import CONFIG_LOADER_ARGS

    return OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env=env, **CONFIG_LOADER_ARGS)


@pytest.fixture(scope="module")
def pythia_params() -> dict:
    return loader("pythia")["parameters"]


# --------------------------------------------------------------------------------------------
# 1. The environment


def test_roles_are_a_pinned_training_series(pythia_params):
    p = pythia_params
    assert p["model_roles"] == ROLES
    assert check_roles(p["model_roles"], p["models"]) == ROLES
    steps = []
    for role in ROLES:
        model = p["models"][role]
        assert model["checkpoint"] == "EleutherAI/pythia-70m-deduped"
        # every revision is pinned: the step's own branch, never the moving default branch
        assert isinstance(model["revision"], str) and model["revision"] not in ("", "main")
        assert model["revision"] == role == f"step{model['step']}"
        assert isinstance(model["step"], int) and not isinstance(model["step"], bool)
        assert model["trust_remote_code"] is False
        assert model.get("embedded") is None  # a Hub model: nothing is built
        steps.append(model["step"])
    assert steps == STEPS
    assert all(a < b for a, b in zip(steps, steps[1:], strict=False))  # strictly increasing
    assert p["replication"]["control_role"] == "step0"
    assert p["trajectory"]["enabled"] is True
    # the trajectory's own check of the series accepts it
    assert check_series(p["model_roles"], p["models"]) == dict(zip(ROLES, STEPS, strict=True))


def test_measurement_settings(pythia_params):
    p = pythia_params
    assert p["runtime"]["device"] == "auto" and p["runtime"]["dtype"] == "auto"
    assert p["runtime"]["batch_size"] == 32
    windows = p["windows"]
    assert (windows["seq_len"], windows["n_calibration"], windows["n_raster"]) == (256, 64, 128)
    assert windows["n_eval_b"] == 96
    assert p["gain_grid"] == SPEC_GAIN_GRID
    assert p["events"] == {"interventions": {"MLP_GLOBAL": "grid"}, "token_shuffle_gains": "grid"}
    assert p["calibration"]["spike_defs"] == ["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"]
    # the paper's expected events per site r * d_ff, at Pythia-70m's d_ff
    assert p["calibration"]["target_rates"] == "auto"
    rates = CalibrationParams.model_validate(p["calibration"]).rates_for(PYTHIA_70M_D_FF)
    assert rates == [9.25e-5, 1.85e-4, 3.7e-4, 7.4e-4]  # its former explicit list
    per_site = [r * PYTHIA_70M_D_FF for r in rates]
    np.testing.assert_allclose(per_site, [r * PAPER_D_FF for r in PAPER_RATES], rtol=1e-12)


def test_the_training_pipeline_trains_nothing(pythia_params):
    p = pythia_params
    # conf/base's recipes are still there (soft merge), but no role points at one
    assert p["embedded_checkpoints"]
    assert recipes_in_use(p["embedded_checkpoints"], p["models"], p["model_roles"]) == []
    # the node returns before reading any text: no corpus is passed at all
    assert train_embedded_models(
        None,
        None,
        None,
        None,
        p["embedded_checkpoints"],
        p["models"],
        p["model_roles"],
        p["windows"],
        p["runtime"],
    ) == {"recipes": {}, "decontamination": None}


def test_catalog_reads_the_papers_hub_datasets():
    pythia, paper = loader("pythia")["catalog"], loader("paper")["catalog"]
    for name in CORPORA:
        assert pythia[name] == paper[name]
    catalog = DataCatalog.from_config({k: pythia[k] for k in CORPORA})
    assert all(type(catalog.get(name)) is HubDataset for name in CORPORA)
    assert catalog.get("corpus_A").dataset_name == "Salesforce/wikitext"
    assert catalog.get("corpus_B")._dataset_kwargs["streaming"] is True
    assert "{role}.model_manifest" in pythia  # the per-role outputs of conf/base


# --------------------------------------------------------------------------------------------
# 2. The capture pipeline on six revisions of a genuine offline Hub cache


@pytest.fixture(scope="module")
def pythia_cache(tmp_path_factory) -> dict:
    return build_pythia_cache(tmp_path_factory.mktemp("pythia-cache"))


def scaled_parameters(params: dict, root: Path) -> dict:
    """conf/pythia with the sizes of the tiny stand-ins (d_ff 128, 128 positions) on the CPU."""
    params = copy.deepcopy(params)
    params["windows"].update(seq_len=32, n_calibration=8, n_raster=8, n_eval_b=4)
    # the same expected events per site, r * d_ff (target_rates: auto), two of them
    params["calibration"]["expected_events_per_site"] = params["calibration"][
        "expected_events_per_site"
    ][:2]
    params["runtime"].update(
        device="cpu", dtype="float32", batch_size=4, progress=False, scratch_dir=str(root / "s")
    )
    return params


def run_capture(root: Path, params: dict, *, only_resolve: bool = False) -> DataCatalog:
    """The capture pipeline of ``params``' roles on the base catalog re-rooted at ``root``; the
    models it loads are dropped from the process-wide cache afterwards (they live in a
    temporary Hub cache)."""
    catalog = project_catalog(root, params)
    # What the training pipeline returns for this environment (shown above): nothing trained.
    catalog["embedded_models"] = {"recipes": {}, "decontamination": None}
    pipeline = capture.create_pipeline(params["model_roles"])
    if only_resolve:
        pipeline = pipeline.only_nodes(*[f"{role}.resolve_model" for role in params["model_roles"]])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints, "_LOADED", {})
        SequentialRunner().run(pipeline, catalog)
    return catalog


def snapshot(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def captured(tmp_path_factory, pythia_params, pythia_cache):
    root = tmp_path_factory.mktemp("pythia-run")
    params = scaled_parameters(pythia_params, root)
    with use_cache(pythia_cache["cache"]), no_network():
        catalog = run_capture(root, params)
    return catalog, params, root


def test_capture_runs_for_every_revision(captured, pythia_cache):
    catalog, params, _ = captured
    manifests = {role: catalog.load(f"{role}.model_manifest") for role in ROLES}
    for role, step in zip(ROLES, STEPS, strict=True):
        manifest = manifests[role]
        assert manifest["model_id"] == PYTHIA and manifest["source"] == "hub"
        assert manifest["revision_requested"] == role
        assert manifest["revision"] == pythia_cache["commits"][role]  # the commit of its branch
        assert manifest["training_step"] == step
        assert manifest["model_type"] == "gpt_neox"
        assert len(manifest["weights_sha256"]) == 64
        report = catalog.load(f"{role}.instrumentation_report")
        assert report["u_matches_recomputed"] and report["logits_identical_at_g1"]
        assert report["n_layers"] == 2
        targets = catalog.load(f"{role}.rate_targets")
        assert len(targets) > 0
    assert len({m["weights_sha256"] for m in manifests.values()}) == len(ROLES)
    check_distinct_weights(manifests)  # a genuine series passes
    assert resolved_steps(ROLES, manifests) == dict(zip(ROLES, STEPS, strict=True))
    # one tokenizer, one set of windows for the whole series (paired comparisons)
    assert len({m["tokenizer_sha256"] for m in manifests.values()}) == 1
    slices = [catalog.load(f"{role}.slice_manifest")["slices"] for role in ROLES]
    assert all([s["sha256"] for s in other] == [s["sha256"] for s in slices[0]] for other in slices)


def test_the_saved_manifest_reloads_the_pinned_revision(captured, pythia_cache):
    catalog, _, _ = captured
    manifest = catalog.load("step8000.model_manifest")
    with use_cache(pythia_cache["cache"]), pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoints, "_LOADED", {})
        loaded = load_model(manifest, {"device": "cpu", "dtype": "float32"})
    assert type(loaded.model).__name__ == "GPTNeoXForCausalLM"
    assert loaded.model.config.use_parallel_residual is True
    assert loaded.d_ff == D_FF
    ids = np.random.default_rng(0).integers(0, manifest["vocab_size"], size=(2, 16))
    report = validate_instrumentation(loaded, ids)
    assert report["u_matches_recomputed"] and report["logits_identical_at_g1"]


# --------------------------------------------------------------------------------------------
# 3. Bad input: a revision that does not exist, two branches serving the same weights


def test_a_missing_revision_stops_the_run_and_keeps_what_was_saved(captured, pythia_cache):
    _, params, root = captured
    before = snapshot(root)
    assert any("/step8000/model_manifest.json/" in path for path in before)
    bad = copy.deepcopy(params)
    bad["models"]["step8000"]["revision"] = "step8001"
    with use_cache(pythia_cache["cache"]), pytest.raises(CheckpointError) as info:
        run_capture(root, bad, only_resolve=True)
    message = str(info.value)
    assert "Revision 'step8001' of 'EleutherAI/pythia-70m-deduped'" in message
    assert "model role 'step8000'" in message
    assert "How to fix" in message
    assert "https://huggingface.co/EleutherAI/pythia-70m-deduped/tree/step8001" in info.value.fix
    assert "models.step8000.revision" in info.value.fix
    after = snapshot(root)
    # nothing saved earlier is lost or changed, and the failing role saved nothing new
    assert {path: after.get(path) for path in before} == before
    added = set(after) - set(before)
    assert not any("/step8000/" in path for path in added), added


def test_two_branches_with_identical_weights_are_refused(tmp_path, pythia_params, pythia_cache):
    cache = copy_cache(pythia_cache["cache"], tmp_path / "hf-home")
    # The step33000 branch now points at a commit that serves step8000's files.
    wrong = add_revision(
        cache, "step33000", pythia_cache["sources"]["step8000"], commit=commit_of("x", "wrong")
    )
    params = scaled_parameters(pythia_params, tmp_path)
    with use_cache(cache):
        catalog = run_capture(tmp_path, params, only_resolve=True)
    manifests = {role: catalog.load(f"{role}.model_manifest") for role in ROLES}
    assert manifests["step33000"]["revision"] == wrong
    assert manifests["step33000"]["revision"] != manifests["step8000"]["revision"]
    assert manifests["step33000"]["weights_sha256"] == manifests["step8000"]["weights_sha256"]
    with pytest.raises(ReplicationError) as info:
        check_distinct_weights(manifests)
    problem, fix = info.value.problem, info.value.fix
    assert (
        f"step8000 (EleutherAI/pythia-70m-deduped @ step8000, commit "
        f"{pythia_cache['commits']['step8000'][:12]}) and step33000 "
        f"(EleutherAI/pythia-70m-deduped @ step33000, commit {wrong[:12]}) have identical weights"
    ) in problem
    assert "models.step33000.revision" in fix
    assert "https://huggingface.co/EleutherAI/pythia-70m-deduped/tree/step33000" in fix
    assert "some Pythia branches serve the weights of another step" in fix
    # the manifests the run saved are still there to inspect
    assert all(catalog.exists(f"{role}.model_manifest") for role in ROLES)
