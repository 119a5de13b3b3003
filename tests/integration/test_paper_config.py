"""The paper configuration (``conf/paper``): its constants, and its loading code on local files.

The paper run needs the Hugging Face Hub (Qwen2.5-7B base/instruct, WikiText-103, C4, ARC) and a
GPU, so it cannot run here. What can run is everything between the configuration and the
numbers: the config loader, the catalog's dataset class, the window code on files shaped like
the Hub datasets (C4 streamed, as in the paper entry), Qwen2-architecture checkpoints in bf16,
the device/dtype rules, the offline Hub error, and the paper's parameter structure end to end
through Kedro with only the sizes scaled down.

No test here may touch the network: :func:`no_network` turns every internet connection into an
error for the whole module.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from kedro.config import OmegaConfigLoader
from kedro.io import DataCatalog
from kedro.runner import SequentialRunner

from avalanche_kedro.core.errors import CheckpointError, ConfigurationError, CorpusError
from avalanche_kedro.framework.datasets import HubDataset
from avalanche_kedro.measure.checkpoints import (
    directory_sha256,
    load_model,
    resolve_checkpoint,
    resolve_device,
    resolve_dtype,
    tokenizer_sha256,
)
from avalanche_kedro.measure.forward import run_pass, validate_instrumentation
from avalanche_kedro.measure.lens import (
    SELF_CHECK_KL_TOLERANCE_HALF,
    layer_predictions,
    lens_self_check,
)
from avalanche_kedro.measure.moments import RunningMoments
from avalanche_kedro.measure.windows import iter_text_records, slice_windows, tokenize_stream
from avalanche_kedro.pipelines import capture, events, training
from avalanche_kedro.pipelines.capture.nodes import _dataset_windows, select_windows
from avalanche_kedro.study.params import CalibrationParams
from tests.conftest import PROJECT_ROOT
from tests.pipelines.conftest import catalog_with_parameters, reroot_paths

#: SPEC §8, the paper's gain grid.
SPEC_GAIN_GRID = [0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.3]
PAPER_CORPORA = ("corpus_A", "corpus_B", "arc_questions")
N_C4_RECORDS = 3000


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module", autouse=True)
def no_network():
    """Any attempt to open an internet socket fails loudly (local Unix sockets stay allowed).

    Module-scoped so that it is in place before the module's other fixtures run, the Kedro
    run of the paper structure included.
    """
    from tests.measure.hub_cache import no_network as guard

    with guard():
        yield


@pytest.fixture(scope="module")
def paper_loader() -> OmegaConfigLoader:
    # Exactly as `kedro run --env paper` builds it (the project's settings included).
    from avalanche_kedro.settings import CONFIG_LOADER_ARGS

    return OmegaConfigLoader(str(PROJECT_ROOT / "conf"), env="paper", **CONFIG_LOADER_ARGS)


@pytest.fixture(scope="module")
def paper_params(paper_loader) -> dict:
    return paper_loader["parameters"]


@pytest.fixture(scope="module")
def paper_catalog_config(paper_loader) -> dict:
    return paper_loader["catalog"]


def _words(rng: np.random.Generator, vocabulary: list[str], n: int) -> str:
    return " ".join(rng.choice(vocabulary, size=n))


@pytest.fixture(scope="module")
def vocabulary(python_corpus_a) -> list[str]:
    """Plain English-ish words from the Python reference manual (what the tokenizer knows)."""
    words = sorted({w for text in python_corpus_a[:20] for w in text.split() if w.isalpha()})
    return words[:600]


@pytest.fixture(scope="module")
def local_files(tmp_path_factory, vocabulary) -> dict:
    """Tiny files shaped like the paper's Hub datasets (columns, blank records, nesting)."""
    root = tmp_path_factory.mktemp("hub-mimics")
    rng = np.random.default_rng(20260101)

    # WikiText-103 (Salesforce/wikitext, wikitext-103-v1): one "text" column, one line per
    # record; articles separated by "" records, " = Heading = \n" lines, blank " \n" lines.
    wiki: list[str] = []
    for article in range(6):
        wiki += ["", f" = Article {article} = \n", ""]
        for section in range(2):
            wiki += [f" = = Section {section} = = \n", " \n"]
            for _ in range(3):
                wiki.append(" " + _words(rng, vocabulary, 40) + " . \n")
            wiki.append("")
    wikitext = root / "wikitext-validation.parquet"
    pd.DataFrame({"text": wiki}).to_parquet(wikitext)

    # C4 (allenai/c4, en): json lines with text, timestamp, url; many records so that a
    # streamed read has to stop long before the end of the file.
    c4 = root / "c4-validation.json"
    with c4.open("w", encoding="utf-8") as handle:
        for i in range(N_C4_RECORDS):
            record = {
                "text": _words(rng, vocabulary, 25).capitalize() + ".",
                "timestamp": "2019-04-25T12:57:54Z",
                "url": f"https://example.org/page/{i}",
            }
            handle.write(json.dumps(record) + "\n")

    # ARC-Challenge (allenai/ai2_arc): the Hub's flattened schema.
    arc = root / "arc-challenge-test.jsonl"
    with arc.open("w", encoding="utf-8") as handle:
        for i, key in enumerate("ABCDB"):
            record = {
                "id": f"Mercury_{7000 + i}",
                "question": f"Which choice is number {i}?",
                "choices": {
                    "text": ["first", "second", "third", "fourth"],
                    "label": ["A", "B", "C", "D"],
                },
                "answerKey": key,
            }
            handle.write(json.dumps(record) + "\n")
    return {
        "wikitext": wikitext,
        "wikitext_records": wiki,
        "c4": c4,
        "arc": arc,
        "cache": root / "hf-cache",
    }


def _save_tiny_qwen2(directory: Path, tokenizer, seed: int) -> Path:
    """A random-init ``Qwen2ForCausalLM`` (the paper models' class), saved with ``tokenizer``."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def qwen2_dir(tmp_path_factory, small_model) -> Path:
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-qwen2"
    return _save_tiny_qwen2(directory, small_model.tokenizer, seed=7)


@pytest.fixture(scope="module")
def qwen2_base_dir(tmp_path_factory, small_model) -> Path:
    """A second Qwen2 (other weights, same tokenizer): the paper's base/instruct pair."""
    directory = tmp_path_factory.mktemp("ckpt") / "tiny-qwen2-base"
    return _save_tiny_qwen2(directory, small_model.tokenizer, seed=11)


SMALL_WINDOWS = {"seq_len": 32, "n_calibration": 8, "n_raster": 8, "n_eval_b": 4}


def _small_windows(paper_params: dict) -> dict:
    windows = copy.deepcopy(paper_params["windows"])
    windows.update(SMALL_WINDOWS)
    return windows


def _wikitext_dataset(files: dict, **extra) -> HubDataset:
    return HubDataset(
        dataset_name="parquet",
        filepath=str(files["wikitext"]),  # the catalog's `filepath` -> data_files route
        dataset_kwargs={"split": "train", "cache_dir": str(files["cache"]), **extra},
    )


def _c4_dataset(files: dict) -> HubDataset:
    return HubDataset(
        dataset_name="json",
        dataset_kwargs={
            "data_files": str(files["c4"]),
            "split": "train",
            "streaming": True,  # exactly like the paper's corpus_B entry
            "cache_dir": str(files["cache"]),
        },
    )


# --------------------------------------------------------------------------------------------
# 1. The paper environment


def test_paper_parameters_are_the_papers_constants(paper_params):
    p = paper_params
    assert p["model_roles"] == ["base", "instruct"]
    assert p["models"]["base"]["checkpoint"] == "Qwen/Qwen2.5-7B"
    assert p["models"]["instruct"]["checkpoint"] == "Qwen/Qwen2.5-7B-Instruct"
    for role in ("base", "instruct"):
        assert p["models"][role].get("embedded") is None  # a Hub model, nothing is built
        assert p["models"][role]["trust_remote_code"] is False
    windows = p["windows"]
    assert windows["seq_len"] == 256
    assert windows["n_calibration"] == 64
    assert windows["n_raster"] == 128
    assert windows["n_eval_b"] == 96
    assert windows["window_pool_factor"] == 10
    assert windows["text_field"] == "text"
    assert len(p["gain_grid"]) == 11
    assert p["gain_grid"] == SPEC_GAIN_GRID
    calibration = p["calibration"]
    # auto: the paper's grid resolved from Qwen2.5-7B's d_ff = 18944, exactly
    assert calibration["target_rates"] == "auto"
    resolved = CalibrationParams.model_validate(calibration).rates_for(18944)
    assert resolved == [1e-5, 2e-5, 4e-5, 8e-5]
    assert calibration["spike_defs"] == ["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"]
    assert calibration["tau0"] == 2.5 and calibration["eps"] == 1e-6
    assert p["rate_matching"]["rel_tol"] == 0.05
    assert p["runtime"]["device"] == "cuda"
    assert p["runtime"]["dtype"] == "bfloat16"
    assert p["events"]["interventions"]["MLP_GLOBAL"] == "grid"
    # the logit lens decodes every analysis window, in GPU-sized chunks of the 152 k vocabulary
    assert p["lens"]["enabled"] is True and p["lens"]["max_windows"] is None
    assert p["lens"]["max_logit_elements"] == 2**28
    assert p["lens"]["prompts"] and p["lens"]["self_check_kl_tolerance"] is None


def test_paper_catalog_names_the_hub_datasets_and_describes_offline(paper_catalog_config):
    expected = {
        "corpus_A": ("Salesforce/wikitext", {"name": "wikitext-103-v1", "split": "validation"}),
        "corpus_B": (
            "allenai/c4",
            {"name": "en", "split": "validation", "streaming": True},
        ),
        "arc_questions": ("allenai/ai2_arc", {"name": "ARC-Challenge", "split": "test"}),
    }
    catalog = DataCatalog.from_config({k: paper_catalog_config[k] for k in PAPER_CORPORA})
    for name, (dataset_name, kwargs) in expected.items():
        dataset = catalog.get(name)
        assert type(dataset) is HubDataset
        assert dataset.dataset_name == dataset_name
        assert dataset._dataset_kwargs == kwargs
        # Kedro describes a dataset on every load; with the network blocked this must work
        # (the upstream HFDataset description queries the Hub API).
        text = str(dataset)
        assert dataset_name in text and "HubDataset" in text
        assert dataset._describe() == {"dataset_name": dataset_name, "dataset_kwargs": kwargs}
    # the per-role outputs of conf/base stay available in the paper environment
    assert "{role}.tau_table" in paper_catalog_config


# --------------------------------------------------------------------------------------------
# 2. The same loading code on local files shaped like the Hub datasets


def test_wikitext_like_file_skips_empty_records_and_cuts_exact_windows(
    local_files, paper_params, small_model
):
    import datasets

    loaded = _wikitext_dataset(local_files).load()
    assert isinstance(loaded, datasets.Dataset)
    assert loaded.column_names == ["text"]
    records = local_files["wikitext_records"]
    n_empty = sum(1 for r in records if not r.strip())
    assert {"", " \n"} <= set(records) and n_empty > 0
    assert any(r.startswith(" = ") for r in records)

    tokenizer = small_model.tokenizer
    windows = _small_windows(paper_params)
    frame, manifests = _dataset_windows(loaded, "corpus_A", "A", tokenizer, windows)
    assert [m["slice"] for m in manifests] == ["calibration", "analysis"]
    for manifest in manifests:
        assert manifest["empty_records_skipped"] == n_empty
        assert manifest["records_read"] == len(records) - n_empty
        assert manifest["corpus_read_completely"] is True  # smaller than the pool
        assert manifest["seq_len"] == 32
    assert all(len(ids) == 32 for ids in frame["input_ids"])
    assert frame.groupby("slice").size().to_dict() == {"analysis": 8, "calibration": 8}

    # the windows are cuts of the stream of the non-empty records, each tokenized alone
    # (headings included, no special tokens)
    expected = np.concatenate(
        [tokenizer(r, add_special_tokens=False)["input_ids"] for r in records if r.strip()]
    )
    for row in frame.itertuples():
        start = row.seq_id * 32
        np.testing.assert_array_equal(row.input_ids, expected[start : start + 32])


def test_streamed_c4_like_file_is_read_only_as_far_as_the_pool_needs(
    local_files, paper_params, small_model
):
    import datasets

    loaded = _c4_dataset(local_files).load()
    assert isinstance(loaded, datasets.IterableDataset)  # streaming honoured: nothing cached
    pulled = {"n": 0}

    def count(example):
        pulled["n"] += 1
        return example

    observed = loaded.map(count)  # lazy: counts the records the window code actually pulls
    windows = _small_windows(paper_params)
    frame, manifests = _dataset_windows(observed, "corpus_B", "B", small_model.tokenizer, windows)
    (manifest,) = manifests
    assert manifest["slice"] == "eval_b" and manifest["n_windows"] == 4
    assert manifest["corpus_read_completely"] is False
    assert 0 < manifest["records_read"] < N_C4_RECORDS
    # exactly the records it counted were pulled from the stream, not one more
    assert pulled["n"] == manifest["records_read"] + manifest["empty_records_skipped"]
    assert manifest["empty_records_skipped"] == 0
    # the stream stopped at the pool size: window_pool_factor x n_eval_b windows
    assert manifest["pool_size"] == manifest["windows_read"] == 10 * 4
    assert all(len(ids) == 32 for ids in frame["input_ids"])

    # and tokenize_stream on the plain streamed dataset reports the same early stop
    stream = tokenize_stream(
        iter_text_records(_c4_dataset(local_files).load()), small_model.tokenizer, 10 * 4 * 32
    )
    assert stream.complete is False and stream.n_records == manifest["records_read"]
    assert stream.ids.size == 10 * 4 * 32


def test_select_windows_on_local_hub_mimics(local_files, paper_params, qwen2_dir):
    manifest = resolve_checkpoint("instruct", {"checkpoint": str(qwen2_dir)})
    windows = _small_windows(paper_params)
    frame, slices = select_windows(
        _wikitext_dataset(local_files).load(), _c4_dataset(local_files).load(), manifest, windows
    )
    assert slices["model_role"] == "instruct"
    assert slices["tokenizer_sha256"] == manifest["tokenizer_sha256"]
    by_slice = {entry["slice"]: entry for entry in slices["slices"]}
    assert set(by_slice) == {"calibration", "analysis", "eval_b"}
    assert by_slice["eval_b"]["corpus_read_completely"] is False
    assert by_slice["calibration"]["corpus_read_completely"] is True
    assert not set(by_slice["calibration"]["chunk_indices"]) & set(
        by_slice["analysis"]["chunk_indices"]
    )
    assert all(len(ids) == 32 for ids in frame["input_ids"])


def test_arc_like_file_loads_in_the_hub_schema(local_files):
    loaded = HubDataset(
        dataset_name="json",
        dataset_kwargs={
            "data_files": str(local_files["arc"]),
            "split": "train",
            "cache_dir": str(local_files["cache"]),
        },
    ).load()
    assert loaded.num_rows == 5
    assert set(loaded.column_names) == {"id", "question", "choices", "answerKey"}
    first = loaded[0]
    assert first["question"] == "Which choice is number 0?"
    assert first["choices"] == {
        "text": ["first", "second", "third", "fourth"],
        "label": ["A", "B", "C", "D"],
    }
    assert all(row["answerKey"] in row["choices"]["label"] for row in loaded)
    # pointed at by mistake as a text corpus, it fails with a clear message
    with pytest.raises(CorpusError, match="no field 'text'"):
        next(iter_text_records(loaded, "text"))


# --------------------------------------------------------------------------------------------
# 3. Devices, dtypes, a Qwen2 checkpoint in bf16


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_explicit_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(ConfigurationError) as info:
        resolve_device("cuda")
    message = str(info.value)
    assert "CUDA is not available" in message
    assert "runtime.device" in message and "How to fix" in message


def test_dtype_rules():
    cpu = torch.device("cpu")
    assert resolve_device("cpu") == cpu
    assert resolve_dtype("auto", cpu) == torch.float32
    assert resolve_dtype("bfloat16", cpu) == torch.bfloat16
    assert resolve_dtype("BF16", cpu) == torch.bfloat16
    assert resolve_dtype("float32", cpu) == torch.float32
    with pytest.raises(ConfigurationError, match="Unknown runtime.dtype 'float8'"):
        resolve_dtype("float8", cpu)


def test_qwen2_checkpoint_resolves_and_loads_in_bf16(qwen2_dir):
    manifest = resolve_checkpoint("instruct", {"checkpoint": str(qwen2_dir)})
    assert manifest["source"] == "local"
    assert manifest["model_type"] == "qwen2"
    assert manifest["architectures"] == ["Qwen2ForCausalLM"]
    assert manifest["content_sha256"] == directory_sha256(qwen2_dir)
    assert len(manifest["content_sha256"]) == 64

    loaded = load_model(manifest, {"device": "cpu", "dtype": "bfloat16"})
    assert type(loaded.model).__name__ == "Qwen2ForCausalLM"
    assert loaded.dtype == torch.bfloat16
    assert {p.dtype for p in loaded.model.parameters()} == {torch.bfloat16}
    assert (loaded.n_layers, loaded.d_ff) == (2, 64)
    # the manifest hashes the tokenizer exactly as the run loads it
    assert manifest["tokenizer_sha256"] == tokenizer_sha256(loaded.tokenizer)

    ids = np.random.default_rng(0).integers(0, manifest["vocab_size"], size=(2, 16))
    # the SPEC §2 validate step passes in bf16 (hooked u vs recomputed, g = 1 bit-identical)
    report = validate_instrumentation(loaded, ids)
    assert report["u_matches_recomputed"] and report["logits_identical_at_g1"]
    # the logit lens in bf16: its last layer reproduces the bf16 logits within the half
    # tolerance, and it decodes in fp32
    lens_check = lens_self_check(loaded, ids)
    assert lens_check["lens_self_check_dtype"] == "bfloat16"
    assert lens_check["lens_self_check_max_kl"] <= SELF_CHECK_KL_TOLERANCE_HALF
    lens = layer_predictions(loaded, ids, batch_size=2)
    assert lens.entropy.shape == (2, 2, 16) and lens.entropy.dtype == np.float32
    assert lens.agrees_final[:, -1].all() and np.isfinite(lens.kl_to_final).all()

    # u arrives in bf16; moments accumulate in fp64; standardization runs in fp32
    seen: dict[int, torch.Tensor] = {}
    run_pass(loaded, ids, batch_size=2, on_u=lambda layer, u: seen.__setitem__(layer, u.clone()))
    assert {u.dtype for u in seen.values()} == {torch.bfloat16}
    running = RunningMoments(2, 64)
    for layer, u in seen.items():
        running.update(layer, u)
    assert running.mean.dtype == torch.float64
    standardizer = running.result().standardizer("cpu")
    z = standardizer(0, seen[0])
    assert z.dtype == torch.float32 and z.shape == seen[0].shape
    assert torch.isfinite(z).all()


# --------------------------------------------------------------------------------------------
# 4. A Hub id while offline


def test_hub_id_offline_is_a_clear_checkpoint_error():
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("HF_HUB_OFFLINE is not set for this process")
    if isinstance(try_to_load_from_cache("Qwen/Qwen2.5-7B", "config.json"), str):
        pytest.skip("Qwen/Qwen2.5-7B is in the local Hugging Face cache")
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint("base", {"checkpoint": "Qwen/Qwen2.5-7B", "revision": None})
    message = str(info.value)
    assert "Qwen/Qwen2.5-7B" in message
    assert "Hugging Face Hub" in message
    assert "HF_HUB_OFFLINE" in message and "local directory" in message


# --------------------------------------------------------------------------------------------
# 5. The paper's parameter structure end to end on local stand-ins


def _scaled_paper_parameters(paper_params, root, qwen2_base_dir, qwen2_dir) -> dict:
    params = copy.deepcopy(paper_params)
    params["windows"].update(SMALL_WINDOWS)
    params["gain_grid"] = [0.8, 1.0, 1.2]  # a subset of the paper grid
    params["calibration"]["target_rates"] = [0.004, 0.016]  # r * d_ff = 0.26 / 1.0 at d_ff 64
    params["runtime"].update(
        device="cpu", dtype="float32", progress=False, scratch_dir=str(root / "scratch")
    )
    params["models"]["base"]["checkpoint"] = str(qwen2_base_dir)
    params["models"]["instruct"]["checkpoint"] = str(qwen2_dir)
    return params


def _local_paper_catalog(config: dict, root: Path, files: dict, params: dict) -> DataCatalog:
    """The paper catalog, corpora swapped to the local mimics and outputs re-rooted."""
    config = copy.deepcopy(config)
    swaps = {"corpus_A": ("parquet", files["wikitext"]), "corpus_B": ("json", files["c4"])}
    for name, (builder, path) in swaps.items():
        entry = config[name]
        entry["dataset_name"] = builder
        kwargs = entry["dataset_kwargs"]
        kwargs.pop("name")  # a Hub builder config; the packaged builders have none
        # keep the paper's split (validation) and streaming flag
        kwargs["data_files"] = {kwargs["split"]: str(path)}
        kwargs["cache_dir"] = str(files["cache"])

    return catalog_with_parameters(reroot_paths(config, root, keys=("filepath",)), params)


@pytest.fixture(scope="module")
def paper_structure_run(
    tmp_path_factory, paper_params, paper_catalog_config, local_files, qwen2_base_dir, qwen2_dir
):
    root = tmp_path_factory.mktemp("paper-run")
    params = _scaled_paper_parameters(paper_params, root, qwen2_base_dir, qwen2_dir)
    catalog = _local_paper_catalog(paper_catalog_config, root, local_files, params)
    roles = params["model_roles"]
    pipeline = (
        training.create_pipeline(roles)  # a no-op: no role uses an embedded recipe
        + capture.create_pipeline(roles)
        + events.create_pipeline(roles)
    )
    SequentialRunner().run(pipeline, catalog)
    return catalog, params


def test_paper_structure_runs_for_both_roles(paper_structure_run):
    catalog, params = paper_structure_run
    assert params["model_roles"] == ["base", "instruct"]
    assert catalog.load("embedded_models") == {"recipes": {}, "decontamination": None}
    n_gains, n_targets, n_defs = 3, 2, 2
    for role in params["model_roles"]:
        manifest = catalog.load(f"{role}.model_manifest")
        assert manifest["model_type"] == "qwen2"
        assert manifest["checkpoint"] == params["models"][role]["checkpoint"]
        report = catalog.load(f"{role}.instrumentation_report")
        assert report["u_matches_recomputed"] and report["logits_identical_at_g1"]
        assert report["lens_self_check_max_kl"] <= 1e-6  # the lens reproduces qwen2's logits

        taus = catalog.load(f"{role}.tau_table")
        assert len(taus) == n_gains * n_defs * n_targets * 2  # 2 layers
        assert sorted(taus["g"].unique()) == [0.8, 1.0, 1.2]
        assert (taus["rate_match_abs_err"] <= taus["rate_match_tol"]).all()
        assert (taus["n_values"] == 8 * 32 * 64).all()

        conditions = catalog.load(f"{role}.conditions_A")
        # paper events config: MLP_GLOBAL over the grid; the token-shuffled input only at
        # g = 1 here (token_shuffle_gains: [1.0]; each g* is added after g* is chosen)
        assert len(conditions) == (n_gains + 1) * n_defs * n_targets
        shuffled = conditions[conditions["null_id"] == "NULL_TOKEN_SHUFFLE_INPUT"]
        assert len(shuffled) == n_defs * n_targets and set(shuffled["g"]) == {1.0}
        rasters = catalog.load(f"{role}.event_rasters_A")
        assert rasters.A.shape == (len(conditions), 8, 2, 32)
        assert rasters.A.dtype == np.uint16

        slices = {e["slice"]: e for e in catalog.load(f"{role}.slice_manifest")["slices"]}
        assert slices["eval_b"]["corpus_read_completely"] is False  # C4 streamed, stopped early
        assert slices["eval_b"]["records_read"] < N_C4_RECORDS


def test_both_roles_see_the_same_windows(paper_structure_run):
    catalog, _ = paper_structure_run
    base = catalog.load("base.slice_manifest")
    instruct = catalog.load("instruct.slice_manifest")
    assert base["tokenizer_sha256"] == instruct["tokenizer_sha256"]
    assert [e["sha256"] for e in base["slices"]] == [e["sha256"] for e in instruct["slices"]]
    # ... while the models themselves differ
    manifests = [catalog.load(f"{role}.model_manifest") for role in ("base", "instruct")]
    assert manifests[0]["content_sha256"] != manifests[1]["content_sha256"]
    ids_base, seq_base = slice_windows(catalog.load("base.windows"), "analysis")
    ids_instruct, seq_instruct = slice_windows(catalog.load("instruct.windows"), "analysis")
    np.testing.assert_array_equal(ids_base, ids_instruct)
    np.testing.assert_array_equal(seq_base, seq_instruct)
