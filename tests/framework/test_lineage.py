"""LineageHooks on a real two-node Kedro pipeline, versioned JSON datasets and SequentialRunner:
stamps, the content check, the one-configuration check and ``--only-missing-outputs``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
from kedro.framework.hooks.manager import _create_hook_manager
from kedro.io import DataCatalog, Version
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner

from avalanche_kedro.core.errors import ArtifactError, ConfigurationError
from avalanche_kedro.framework.atomic import JSONDataset
from avalanche_kedro.framework.lineage import LineageHooks, artifact_path, with_defaults
from avalanche_kedro.framework.stamps import read_stamp, stamp_path
from avalanche_kedro.study.params import WindowsParams

PARAMETERS = {
    "windows": {"seq_len": 64, "n_calibration": 8, "n_raster": 16, "n_eval_b": 4},
    "gain_grid": [0.5, 1.0],
    "lens": {"top_k": 5},  # read by no node of the pipeline below
    "runtime": {"device": "cpu", "torch_threads": 1, "progress": False},
    "models": {"base": {"checkpoint": "c", "trust_remote_code": False}},
}


def _windows(windows, runtime):
    return {"n": windows["n_raster"], "device": runtime["device"]}


def _rasters(windows, gains, model):
    return {"n": windows["n"], "gains": gains, "checkpoint": model["checkpoint"]}


PIPELINE = Pipeline(
    [
        node(_windows, ["params:windows", "params:runtime"], "windows", name="make_windows"),
        node(
            _rasters,
            ["windows", "params:gain_grid", "params:models.base"],
            "rasters",
            name="record_rasters",
        ),
    ]
)
REGISTERED = {"__default__": PIPELINE, "capture": PIPELINE.only_nodes("make_windows"),
              "events": PIPELINE.only_nodes("record_rasters")}  # fmt: skip


def _catalog(root: Path, version: str, parameters: dict) -> DataCatalog:
    catalog = DataCatalog(
        {
            name: JSONDataset(filepath=str(root / f"{name}.json"), version=Version(None, version))
            for name in ("windows", "rasters")
        }
    )
    for key in ("windows", "gain_grid", "runtime", "models.base"):
        value = parameters
        for part in key.split("."):
            value = value[part]
        catalog[f"params:{key}"] = value  # as Kedro's context adds them: memory datasets
    return catalog


def _run(root: Path, parameters: dict, pipeline=PIPELINE, version="v1", only_missing=False):
    """One run with the project's LineageHooks: returns the catalog and the hooks."""
    manager = _create_hook_manager()
    hooks = LineageHooks(REGISTERED)
    manager.register(hooks)
    manager.hook.after_context_created(context=SimpleNamespace(params=parameters))
    catalog = _catalog(root, version, parameters)
    run_params = {"session_id": version, "only_missing_outputs": only_missing}
    manager.hook.before_pipeline_run(run_params=run_params, pipeline=pipeline, catalog=catalog)
    SequentialRunner().run(pipeline, catalog, manager, only_missing_outputs=only_missing)
    manager.hook.after_pipeline_run(
        run_params=run_params, run_result={}, pipeline=pipeline, catalog=catalog
    )
    return catalog, hooks


def _changed(parameters: dict, **blocks) -> dict:
    return json.loads(json.dumps(parameters)) | blocks


def test_each_saved_artifact_is_stamped_with_the_parameters_it_depends_on(tmp_path):
    catalog, hooks = _run(tmp_path, PARAMETERS)
    assert hooks.depends_on == {
        "windows": {"windows", "runtime"},
        "rasters": {"windows", "runtime", "gain_grid", "models.base"},
    }
    path = artifact_path(catalog.get("rasters"))
    assert path == tmp_path / "rasters.json" / "v1" / "rasters.json"
    stamp = read_stamp(path)
    assert stamp["dataset"] == "rasters" and stamp["node"] == "record_rasters"
    assert stamp["session_id"] == "v1"
    # the blocks it depends on, typed defaults filled in; execution-only keys are left out:
    # torch threads, progress bars, the remote-code permission
    leaves = stamp["parameters"]
    assert {k: leaves[k] for k in ("gain_grid", "models.base.checkpoint", "windows.n_raster")} == {
        "gain_grid": [0.5, 1.0],
        "models.base.checkpoint": "c",
        "windows.n_raster": 16,
    }
    assert leaves["runtime.device"] == "cpu" and leaves["windows.window_pool_factor"] == 10
    assert {k.split(".")[0] for k in leaves} == {"gain_grid", "models", "runtime", "windows"}
    for left_out in ("runtime.torch_threads", "runtime.progress", "models.base.trust_remote_code"):
        assert left_out not in leaves
    windows = read_stamp(artifact_path(catalog.get("windows")))["parameters"]
    assert {k.split(".")[0] for k in windows} == {"runtime", "windows"}


def test_inputs_made_with_other_parameters_are_refused_naming_the_keys(tmp_path):
    _run(tmp_path, PARAMETERS, REGISTERED["capture"])
    changed = _changed(PARAMETERS, windows={**PARAMETERS["windows"], "seq_len": 32})
    with pytest.raises(ConfigurationError) as info:
        _run(tmp_path, changed, REGISTERED["events"], version="v2")
    assert "Dataset 'windows'" in info.value.problem
    assert "windows.seq_len: 64 -> 32" in info.value.problem
    assert "`kedro run --pipelines capture`" in info.value.fix
    assert not (tmp_path / "rasters.json").exists()  # refused before the node ran
    # changes a dataset does not depend on, and execution-only keys, are no reason to refuse
    unrelated = _changed(
        PARAMETERS,
        lens={"top_k": 9},
        runtime={"device": "cpu", "torch_threads": 2, "progress": True},
        models={"base": {"checkpoint": "c", "trust_remote_code": True}},
    )
    _run(tmp_path, unrelated, REGISTERED["events"], version="v3")
    assert read_stamp(tmp_path / "rasters.json" / "v3" / "rasters.json")["session_id"] == "v3"


def test_an_edited_input_is_refused_with_both_hashes(tmp_path):
    _run(tmp_path, PARAMETERS, REGISTERED["capture"])
    path = tmp_path / "windows.json" / "v1" / "windows.json"
    recorded = read_stamp(path)["sha256"]
    path.write_text(path.read_text().replace("16", "12"))
    with pytest.raises(ArtifactError) as info:
        _run(tmp_path, PARAMETERS, REGISTERED["events"], version="v2")
    assert "changed after it was written" in info.value.problem
    assert f"sha256 {recorded}" in info.value.problem


def test_an_input_without_a_stamp_cannot_be_verified_and_is_refused(tmp_path):
    _run(tmp_path, PARAMETERS, REGISTERED["capture"])
    stamp_path(tmp_path / "windows.json" / "v1" / "windows.json").unlink()
    with pytest.raises(ArtifactError, match="has no stamp"):
        _run(tmp_path, PARAMETERS, REGISTERED["events"], version="v2")


def test_only_missing_outputs_recomputes_outputs_made_with_other_parameters(tmp_path, caplog):
    _run(tmp_path, PARAMETERS)
    catalog, _ = _run(tmp_path, PARAMETERS, version="v2", only_missing=True)
    assert not (tmp_path / "windows.json" / "v2").exists()  # unchanged: nothing reran

    changed = _changed(PARAMETERS, gain_grid=[1.0])
    _run(tmp_path, changed, version="v3", only_missing=True)
    # the rasters depend on gain_grid and are recomputed; the windows do not and are kept
    assert json.loads((tmp_path / "rasters.json" / "v3" / "rasters.json").read_text())["gains"] == [
        1.0
    ]
    assert not (tmp_path / "windows.json" / "v3").exists()
    assert "'rasters' will be recomputed" in caplog.text
    assert "gain_grid: [0.5, 1.0] -> [1.0]" in caplog.text
    assert (tmp_path / "rasters.json" / "v1" / "rasters.json").exists()  # old version kept


def test_typed_blocks_are_compared_with_their_defaults_filled_in():
    block = WindowsParams(seq_len=64, n_calibration=8, n_raster=8, n_eval_b=4)
    plain = with_defaults({"windows": block, "gain_grid": (1.0,), "other": {"a": (1,)}})
    assert plain["windows"]["window_pool_factor"] == 10  # a default, spelled out
    assert plain["windows"]["text_field"] == "text" and plain["gain_grid"] == [1.0]
    assert plain["other"] == {"a": [1]}
    # a block Kedro did not validate for this run (a plain mapping) gets the same defaults
    unvalidated = {"seq_len": 64, "n_calibration": 8, "n_raster": 8, "n_eval_b": 4}
    assert with_defaults({"windows": unvalidated})["windows"] == plain["windows"]
    model = with_defaults({"models": {"base": {"checkpoint": "c"}}})["models"]["base"]
    assert model["checkpoint"] == "c" and model["embedded"] is None and "step" in model


def test_a_concurrent_runs_fresh_artifact_is_awaited_for_its_stamp(tmp_path):
    """Another run publishes an artifact and writes its stamp right after: a reader in between
    waits for the stamp instead of refusing the artifact."""
    import threading

    from avalanche_kedro.framework.lineage import _stamp_of
    from avalanche_kedro.framework.stamps import write_stamp

    artifact = tmp_path / "windows.json"
    artifact.write_text("{}")
    writer = threading.Timer(0.3, write_stamp, args=(artifact, {"session_id": "other"}))
    writer.start()
    assert _stamp_of(artifact)["session_id"] == "other"
    writer.join()
    stale = tmp_path / "old.json"
    stale.write_text("{}")
    os.utime(stale, (0, 0))  # published long ago and never stamped: no waiting
    assert _stamp_of(stale) is None
