"""Remote code is an explicit, visible decision of the configuration (issue 20, item 4).

On real checkpoints: a copy of the session's ``small_checkpoint`` that carries a harmless
custom model class (``modeling_tiny.py`` named in ``config.json``'s ``auto_map``), so whether
the checkpoint's own code ran is visible in the class of the loaded model; and a genuine
offline Hugging Face cache for a Hub id's ``auto_map``. ``kedro run`` itself (a saved manifest
edited to switch remote code on, ``--params`` switching it on) is covered by
``tests/integration/test_remote_code.py``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.measure import remote_code
from avalanche_kedro.measure.checkpoints import load_model, models_loaded, resolve_checkpoint
from avalanche_kedro.measure.remote_code import (
    ENV_VAR,
    allow_remote_code,
    allowed_by,
    allowed_roles,
    check_manifest,
    remote_code_allowed,
    remote_code_files,
    remote_code_record,
    same_checkpoint,
)
from tests.measure.hub_cache import add_revision, use_cache

CUSTOM_MODULE = '''"""A harmless custom model class: the built-in Llama under another name."""
from transformers import LlamaForCausalLM


class TinyCustomForCausalLM(LlamaForCausalLM):
    pass
'''
CPU = {"device": "cpu", "dtype": "float32"}


@pytest.fixture(autouse=True)
def no_decision():
    """Each test starts with no decision in this process or its environment, and leaves none."""
    previous_env = os.environ.pop(ENV_VAR, None)
    previous = allow_remote_code(None)
    yield
    allow_remote_code(previous)
    if previous_env is None:
        os.environ.pop(ENV_VAR, None)
    else:
        os.environ[ENV_VAR] = previous_env


@pytest.fixture(scope="module")
def custom_checkpoint(small_checkpoint, tmp_path_factory) -> Path:
    """The small checkpoint with its own Python file, named by config.json's auto_map."""
    directory = tmp_path_factory.mktemp("remote-code") / "tiny-custom"
    shutil.copytree(small_checkpoint["checkpoint"], directory)
    (directory / "modeling_tiny.py").write_text(CUSTOM_MODULE)
    config = json.loads((directory / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_tiny.TinyCustomForCausalLM"}
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


def _manifest(directory: Path, trust: bool) -> dict:
    manifest = resolve_checkpoint("custom", {"checkpoint": str(directory)})
    return {**manifest, "trust_remote_code": trust}


def test_the_decision_comes_from_the_models_block():
    parameters = {
        "models": {
            "base": {"checkpoint": "org/custom", "trust_remote_code": True},
            "instruct": {"checkpoint": "data/x", "trust_remote_code": False},
            "untrained": {"checkpoint": "data/y"},
        }
    }
    assert allowed_by(parameters) == {"base": "org/custom"}
    assert allowed_by({}) == {} and allowed_by(None) == {}


def test_the_files_that_run_local_directory(custom_checkpoint):
    assert remote_code_files(str(custom_checkpoint)) == ["modeling_tiny.py"]
    # code taken from another repository is named with that repository
    other = custom_checkpoint.parent / "borrows-code"
    other.mkdir()
    (other / "config.json").write_text(
        json.dumps({"auto_map": {"AutoConfig": "org/shared--configuration_x.XConfig"}})
    )
    (other / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["org/tok--tokenization_x.XTok", None]}})
    )
    assert remote_code_files(str(other)) == [
        "org/shared: configuration_x.py",
        "org/tok: tokenization_x.py",
    ]


def test_the_files_that_run_hub_id_read_from_the_cache(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "config.json").write_text(
        json.dumps(
            {
                "model_type": "custom",
                "auto_map": {
                    "AutoConfig": "configuration_custom.CustomConfig",
                    "AutoModelForCausalLM": "modeling_custom.CustomForCausalLM",
                },
            }
        )
    )
    cache = tmp_path / "hf-home" / "hub"
    add_revision(cache, "main", source, repo_id="org/custom-code")
    with use_cache(cache):
        assert remote_code_files("org/custom-code", "main") == [
            "configuration_custom.py",
            "modeling_custom.py",
        ]
        assert remote_code_files("org/not-cached") == []  # unreadable: left out, no error


def test_a_saved_manifest_never_switches_remote_code_on(custom_checkpoint):
    manifest = _manifest(custom_checkpoint, trust=True)  # as if edited after the capture
    loads = len(models_loaded())
    with pytest.raises(ConfigurationError) as error:
        load_model(manifest, CPU)
    message = str(error.value)
    assert "records trust_remote_code: true" in message
    assert str(custom_checkpoint) in message and "modeling_tiny.py" in message
    assert "models.custom.trust_remote_code: true" in error.value.fix
    assert len(models_loaded()) == loads  # refused before anything loaded
    # the capture's tokenizer load is refused the same way
    from avalanche_kedro.pipelines.capture.nodes import _load_tokenizer

    with pytest.raises(ConfigurationError, match="records trust_remote_code: true"):
        _load_tokenizer(manifest)


def test_without_the_decision_the_checkpoints_code_does_not_run(custom_checkpoint):
    loaded = load_model(_manifest(custom_checkpoint, trust=False), CPU)
    assert type(loaded.model).__name__ == "LlamaForCausalLM"  # the built-in class


def test_allowed_remote_code_runs_with_a_warning_naming_checkpoint_and_files(
    custom_checkpoint, caplog
):
    allow_remote_code({"custom": str(custom_checkpoint)})
    with caplog.at_level(logging.WARNING, "avalanche_kedro"):
        manifest = _manifest(custom_checkpoint, trust=False)  # the flag in the file is ignored
        loaded = load_model(manifest, CPU)
        load_model(manifest, CPU)  # cached: no second warning
    assert type(loaded.model).__name__ == "TinyCustomForCausalLM"  # its own code ran
    warnings = [r.getMessage() for r in caplog.records if "trust_remote_code is true" in r.message]
    assert len(warnings) == 1
    assert str(custom_checkpoint) in warnings[0] and "modeling_tiny.py" in warnings[0]
    assert "models.custom" in warnings[0]


def test_resolving_with_trust_remote_code_warns_first(custom_checkpoint, caplog):
    with caplog.at_level(logging.WARNING, "avalanche_kedro"):
        manifest = resolve_checkpoint(
            "custom", {"checkpoint": str(custom_checkpoint), "trust_remote_code": True}
        )
    assert manifest["trust_remote_code"] is True  # recorded, never read back as permission
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "models.custom.trust_remote_code is true" in messages
    assert "modeling_tiny.py" in messages


def test_allowed_for_another_checkpoint_is_refused(custom_checkpoint, small_checkpoint):
    allow_remote_code({"custom": str(small_checkpoint["checkpoint"])})
    with pytest.raises(ConfigurationError, match="names the checkpoint"):
        remote_code_allowed(_manifest(custom_checkpoint, trust=False))


def test_same_checkpoint_hub_ids_directories_and_training_steps(tmp_path):
    trained = tmp_path / "tiny-llama"
    step = trained / "step-000010"
    step.mkdir(parents=True)
    local = {"source": "local", "checkpoint": str(step)}
    assert same_checkpoint(str(step), local)
    assert same_checkpoint(str(trained), local)  # a saved step of the configured run
    assert not same_checkpoint(str(tmp_path / "elsewhere"), local)
    hub = {"source": "hub", "checkpoint": "org/model"}
    assert same_checkpoint("org/model", hub)
    assert not same_checkpoint("org/other", hub)


def test_check_manifest_uses_the_decision_it_is_given(custom_checkpoint):
    saved = {"model_role": "base", "checkpoint": str(custom_checkpoint), "trust_remote_code": True}
    with pytest.raises(ConfigurationError, match="does not allow remote code"):
        check_manifest(saved, {})
    check_manifest(saved, {"base": str(custom_checkpoint)})  # allowed: no error
    check_manifest({**saved, "trust_remote_code": False}, {})  # nothing to run
    assert allowed_roles() == {}  # the process's own decision is untouched


def test_the_decision_reaches_child_processes_through_the_environment():
    allow_remote_code({"base": "org/custom"})
    code = "from avalanche_kedro.measure.remote_code import allowed_roles; print(allowed_roles())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "{'base': 'org/custom'}"
    allow_remote_code(None)  # unset: nothing handed down
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert child.stdout.strip() == "{}"


def test_a_malformed_environment_variable_is_an_error(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "base")
    with pytest.raises(ConfigurationError, match=ENV_VAR):
        allowed_roles()


def test_the_run_manifest_record(custom_checkpoint):
    manifests = {"custom": {"checkpoint": str(custom_checkpoint), "revision": None}}
    record = remote_code_record({"custom": str(custom_checkpoint)}, manifests)
    assert record == {
        "custom": {
            "checkpoint": str(custom_checkpoint),
            "revision": None,
            "files": ["modeling_tiny.py"],
        }
    }
    assert remote_code_record({}, manifests) == {}
    assert remote_code.describe_files([]).startswith("no Python files")
