"""Calibration nodes that score ARC multiple-choice questions at g = 1 and each g* (SPEC §8)
and summarize accuracy, with the paired g* - g = 1 difference on the same questions."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ...core.errors import ConfigurationError
from ...evaluation.arc import (
    accuracy_difference_vs_gain,
    arc_accuracy,
    normalize_arc_records,
    prompt_set_sha256,
    question_progress,
    score_arc,
)
from ...framework.datasets import source_detail
from ...measure.checkpoints import load_model
from ...study.params import ArcParams, RuntimeParams
from .nodes import GSTAR, _gain_rows, _vs_g1, distinct_gains


def score_arc_questions(
    model_manifest: dict,
    arc_questions: Any,
    gstar_A: pd.DataFrame,
    runtime: RuntimeParams,
    arc: ArcParams,
) -> tuple[pd.DataFrame, dict]:
    """Option scores of every ARC question at g = 1 and each g* (one run per distinct gain).

    One progress bar (``runtime.progress``) spans every gain, in questions: gains x questions.
    """
    questions = normalize_arc_records(
        _arc_rows(arc_questions), "arc_questions", source_detail(arc_questions)
    )
    arc = ArcParams.coerce(arc)
    if arc.max_questions is not None:
        questions = questions[: arc.max_questions]
    runtime = RuntimeParams.coerce(runtime)
    loaded = load_model(model_manifest, runtime.model_dump())
    gains = distinct_gains(gstar_A)
    bar = question_progress(len(gains) * len(questions), "ARC scoring", runtime.progress)
    try:
        parts = [score_arc(loaded, questions, g, progress=bar) for g in gains]
    finally:
        bar.close()
    scores = pd.concat(parts, ignore_index=True)
    manifest = {
        "model_role": model_manifest["model_role"],
        "dataset_role": "ARC_MCQ",
        "n_questions": len(questions),
        "question_ids": [q.id for q in questions],
        "prompt_sha256": prompt_set_sha256(questions),
        "gains": gains,
        "scoring_paths": scores.groupby("scoring_path").size().to_dict(),
    }
    return scores, manifest


def _arc_rows(loaded: Any) -> list:
    """ARC rows of whatever the catalog loaded (a Hugging Face Dataset or a list of dicts)."""
    if isinstance(loaded, dict):
        raise ConfigurationError(
            f"arc_questions loaded as a mapping of splits ({sorted(loaded)[:5]}), not as one split.",
            "Add `split: <name>` to the dataset_kwargs of the arc_questions catalog entry.",
        )
    return list(loaded)


def summarize_arc(arc_scores: pd.DataFrame, gstar_A: pd.DataFrame, arc: ArcParams) -> pd.DataFrame:
    """ARC accuracy (bootstrap CI over questions) and mean margin at g = 1 and g*.

    One row per (spike def, target rate, g_condition), repeating the measurement of a gain
    wherever it is that (spike def, rate)'s g = 1 or g*.
    """
    replicates = ArcParams.coerce(arc).bootstrap_replicates
    by_gain = {g: arc_accuracy(part, replicates) for g, part in arc_scores.groupby("g")}
    rows = [
        {
            "dataset_role": "ARC_MCQ",
            "spike_def_id": spike_def,
            "target_rate": rate,
            "g_condition": g_condition,
            "g": g,
            **by_gain[g],
            # g* against g = 1 on the same questions (falsifier (c)); NaN on the g = 1 rows
            **_vs_g1(
                accuracy_difference_vs_gain(arc_scores, g, 1.0, replicates), g_condition == GSTAR
            ),
        }
        for spike_def, rate, g_condition, g in _gain_rows(gstar_A)
    ]
    return pd.DataFrame(rows)
