"""The benchmark command line: each command writes its JSON (the events sweep end to end)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from avalanche_kedro.tools.benchmark.cli import main
from tests.conftest import PROJECT_ROOT


def test_events_command_writes_the_sweep_and_the_bare_pass(tmp_path, capsys):
    out = tmp_path / "events.json"
    checkpoint = tmp_path / "tiny-llama-benchmark"  # the embedded shape, built on first use
    main(
        [
            "events",
            "--preset",
            "embedded",
            "--checkpoint",
            str(checkpoint),
            "--gains",
            "0.9",
            "1.0",
            "--n-calibration",
            "2",
            "--n-analysis",
            "2",
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    assert result["preset"]["gains"] == [0.9, 1.0]
    assert result["forward_passes_per_phase"] == 2 * (2 + 2)
    assert result["tokens_per_phase"] == 2 * 4 * 256
    assert result["n_layers"] == 8 and result["d_ff"] == 384
    # each repeat's sweep is its two phases; the summary gives medians over the repeats (a
    # median of sums is not the sum of medians, so the relations hold per repeat)
    repeats = result["per_repeat"]
    assert len(repeats) == result["repeats"] == 3
    for record in repeats:
        assert record["sweep_wall"] == pytest.approx(
            record["thresholds_wall"] + record["rasters_wall"]
        )
        assert record["ratio_wall"] == pytest.approx(record["sweep_wall"] / record["bare_wall"])
    for key, summary in (
        ("sweep_wall", "events_sweep_seconds"),
        ("thresholds_wall", "events_sweep_seconds_thresholds"),
        ("rasters_wall", "events_sweep_seconds_rasters"),
        ("bare_wall", "bare_forward_seconds"),
        ("ratio_wall", "ratio_sweep_over_bare"),
    ):
        assert result[summary] == pytest.approx(sorted(r[key] for r in repeats)[1])
    assert (checkpoint / "config.json").exists()
    out = capsys.readouterr().out
    # the summary is the last thing printed (log lines of the model loading may precede it)
    printed = json.loads(out[out.rindex("{\n") :])
    assert printed["ratio_sweep_over_bare"] == result["ratio_sweep_over_bare"]


def test_components_command_writes_json(tmp_path):
    out = tmp_path / "nested" / "components.json"
    main(["components", "--shape", "3", "2", "16", "--occupancy", "0.2", "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["shape_N_L_T"] == [3, 2, 16]
    assert result["adj_4n_avalanches"] >= result["adj_8n_avalanches"] > 0


def test_module_runs_with_python_dash_m_and_names_its_commands():
    result = subprocess.run(
        [sys.executable, "-m", "avalanche_kedro.tools.benchmark", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "python -m avalanche_kedro.tools.benchmark" in result.stdout
    assert "{events,scaling,components,lens,threads,whole-run}" in result.stdout


def test_the_issues_spelling_runs_whole_run_through_the_old_path():
    # `python -m avalanche_kedro.benchmark whole-run` (issue 19) is the moved-module alias of
    # avalanche_kedro.tools.benchmark: the same command line, with a FutureWarning naming it
    result = subprocess.run(
        [sys.executable, "-m", "avalanche_kedro.benchmark", "whole-run", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--from-manifest" in result.stdout and "--pipelines" in result.stdout
    assert "moved to avalanche_kedro.tools.benchmark" in result.stderr


def test_an_unknown_preset_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        main(["events", "--preset", "llama-70b", "--out", str(tmp_path / "x.json")])
