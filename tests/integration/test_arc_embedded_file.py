"""The project's own ARC-format question file, data/01_raw/arc_embedded.jsonl.

It is read through the catalog's dataset class (``arc_questions``: ``HubDataset`` with the
``json`` builder) and also parsed line by line, and its key structure is compared with the
original AI2 ARC release when the shared fixtures are present.
"""

from __future__ import annotations

import json
import string

import pytest

from avalanche_kedro.framework.datasets import HubDataset
from tests.conftest import PROJECT_ROOT

ARC_FILE = PROJECT_ROOT / "data" / "01_raw" / "arc_embedded.jsonl"
ARC_FIXTURE = (
    PROJECT_ROOT.parent / "shared" / "fixtures" / "ai2-arc-challenge" / "ARC-Challenge-Test.jsonl"
)
N_QUESTIONS = 40


def _raw_records() -> list[dict]:
    records = []
    with ARC_FILE.open(encoding="ascii") as handle:  # the file must be plain ASCII
        for number, line in enumerate(handle, start=1):
            assert line.strip(), f"blank line {number}"
            records.append(json.loads(line))
    return records


def _key_structure(record: dict) -> dict:
    """Nested key layout of one ARC record (keys and value kinds, not values)."""
    return {
        "top": sorted(record),
        "question": sorted(record["question"]),
        "choice": sorted({key for choice in record["question"]["choices"] for key in choice}),
        "kinds": (
            type(record["id"]).__name__,
            type(record["question"]["stem"]).__name__,
            type(record["question"]["choices"]).__name__,
            type(record["answerKey"]).__name__,
        ),
    }


def _check_records(records: list[dict]) -> None:
    assert len(records) == N_QUESTIONS
    ids = [record["id"] for record in records]
    assert len(set(ids)) == len(ids), "ids must be unique"
    positions = set()
    for record in records:
        question = record["question"]
        assert isinstance(question["stem"], str) and question["stem"].strip(), record["id"]
        choices = question["choices"]
        assert 3 <= len(choices) <= 5, record["id"]
        labels = [choice["label"] for choice in choices]
        assert all(isinstance(label, str) and label for label in labels), record["id"]
        assert all(choice["text"].strip() for choice in choices), record["id"]
        assert len(set(labels)) == len(labels), record["id"]
        assert labels in (
            list(string.ascii_uppercase[: len(labels)]),
            [str(i) for i in range(1, len(labels) + 1)],
        ), f"{record['id']}: labels {labels} are neither A.. nor 1.."
        assert record["answerKey"] in labels, record["id"]
        positions.add(labels.index(record["answerKey"]))
    assert len(positions) >= 3, f"correct answers use only positions {sorted(positions)}"


def test_catalog_dataset_loads_file(tmp_path):
    dataset = HubDataset(
        dataset_name="json",
        dataset_kwargs={
            "data_files": str(ARC_FILE),
            "split": "train",
            "cache_dir": str(tmp_path / "hf_cache"),
        },
    )
    rows = dataset.load()
    assert rows.num_rows == N_QUESTIONS
    assert set(rows.column_names) == {"id", "question", "answerKey"}
    records = [
        {"id": row["id"], "question": row["question"], "answerKey": row["answerKey"]}
        for row in rows
    ]
    _check_records(records)
    # Same content as the raw file, in the same order.
    assert records == _raw_records()


def test_raw_file_schema():
    records = _raw_records()
    _check_records(records)
    first = _key_structure(records[0])
    for record in records:
        assert _key_structure(record) == first, record["id"]
    assert first["top"] == ["answerKey", "id", "question"]
    assert first["question"] == ["choices", "stem"]
    assert first["choice"] == ["label", "text"]


def test_raw_file_matches_original_arc_schema():
    if not ARC_FIXTURE.parent.parent.is_dir():
        pytest.skip(f"shared fixtures not present ({ARC_FIXTURE.parent.parent})")
    if not ARC_FIXTURE.is_file():
        pytest.skip(f"ARC fixture not present ({ARC_FIXTURE})")
    with ARC_FIXTURE.open(encoding="utf-8") as handle:
        reference = _key_structure(json.loads(handle.readline()))
    for record in _raw_records():
        assert _key_structure(record) == reference, record["id"]
