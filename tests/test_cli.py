"""The project's ``kedro run``: Kedro's options plus --verbose, input errors as problem + fix.

The real command in a real subprocess on every case of issue 16 is
tests/integration/test_fail_fast.py; here: the pieces, and the command invoked through
click's test runner on a project copy.
"""

from __future__ import annotations

import logging
import signal

import pytest
from click.testing import CliRunner
from kedro.framework.cli.project import run as kedro_run
from kedro.io import DatasetError

from avalanche_kedro.cli import (
    avalanche_error_in,
    cli,
    input_error_text,
    interruption_text,
    traceback_requested,
)
from avalanche_kedro.core.errors import CorpusError
from avalanche_kedro.framework.interrupts import RunInterrupted
from tests.conftest import copy_project


def test_the_error_is_found_where_kedro_wrapped_it():
    error = CorpusError("bad file.", "use another.")
    try:
        try:
            raise error
        except CorpusError as exc:
            raise DatasetError("corpus_A: Failed while loading data") from exc
    except DatasetError as wrapped:
        assert avalanche_error_in(wrapped) is error
    try:
        try:
            raise error
        except CorpusError:
            raise ValueError("raised while handling it")  # noqa: B904 - the implicit context
    except ValueError as during:
        assert avalanche_error_in(during) is error
    assert avalanche_error_in(ValueError("a bug")) is None


def test_the_message_has_the_class_the_problem_and_the_fix():
    text = input_error_text(CorpusError("The file x is binary.", "Point corpus_A at text."))
    assert (
        text == "Error (CorpusError): The file x is binary.\n  How to fix: Point corpus_A at text."
    )


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interruption_says_how_to_resume(signum, status):
    interrupted = RunInterrupted(signal.Signals(signum).name)
    text, code = interruption_text(interrupted, ["run", "--pipelines", "events"])
    assert code == status
    assert f"Run interrupted ({signal.Signals(signum).name})" in text
    assert text.endswith("To resume: kedro run --pipelines events --only-missing-outputs")
    text, _ = interruption_text(KeyboardInterrupt(), ["run", "--only-missing-outputs"])
    assert "(SIGINT)" in text and text.count("--only-missing-outputs") == 1


def test_verbose_or_a_debug_logger_asks_for_the_traceback():
    logger = logging.getLogger("avalanche_kedro")
    previous = logger.level
    try:
        logger.setLevel(logging.INFO)  # as conf/logging.yml sets it
        assert traceback_requested(True) and not traceback_requested(False)
        logger.setLevel(logging.DEBUG)  # as a user's KEDRO_LOGGING_CONFIG may
        assert traceback_requested(False)
    finally:
        logger.setLevel(previous)


def test_run_keeps_every_kedro_option_and_adds_verbose():
    ours = {p.name for p in cli.commands["run"].params}
    assert ours == {p.name for p in kedro_run.params} | {"verbose"}


def test_a_bad_parameter_through_the_command(tmp_path, monkeypatch):
    from kedro.framework.startup import bootstrap_project

    project = copy_project(tmp_path)
    bootstrap_project(project)
    monkeypatch.chdir(project)
    result = CliRunner().invoke(cli, ["run", "--params", "runtime.batch_size=0"])
    assert result.exit_code == 1
    assert "Error (ParameterError): Invalid parameters" in result.output
    assert "runtime.batch_size = 0 (from --params)" in result.output
    assert "How to fix:" in result.output
    assert sorted(p.name for p in (project / "data").iterdir()) == ["01_raw"]  # nothing ran
