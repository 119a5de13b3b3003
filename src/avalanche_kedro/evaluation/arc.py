"""ARC multiple choice: records, prompts, option scores and accuracy (SPEC §8).

Records come either in the original AI2 layout (``question: {stem, choices: [{text, label}]}``,
the project's own file) or in the Hugging Face ``allenai/ai2_arc`` layout (``question`` a
string, ``choices: {text: [...], label: [...]}``). Malformed records stop the run with their
ids listed; none is ever dropped silently.

Prompt (one choice a line)::

    Question: {stem}
    Choices:
    A) {text}
    ...
    Answer:

The score of an option is the summed log-probability (fp32) of the continuation ``" {label}"``
after the prompt (prompt tokenized with the tokenizer's special tokens, continuation without).
When every option's continuation is a single token, one forward pass of the prompt scores all
options from the last position's log-softmax; otherwise each option is scored by its own pass
over prompt + continuation. The prediction is the highest score, the first label on ties.

Progress is counted in questions (:func:`question_progress`): one question is one forward pass
on the single-token path or one per option, so questions, not tokens, are what a user can
relate to the ARC file; the count is known before any prompt is tokenized.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ..analysis.bootstrap import bootstrap_indices, percentile_interval
from ..core.errors import AvalancheError
from ..measure.adapters import instrument
from ..measure.checkpoint_checks import context_length
from ..measure.checkpoints import LoadedModel
from ..measure.forward import count_tokens
from ..measure.gain import MLP_GLOBAL, layer_gains

ARC_DATASET_ROLE = "ARC_MCQ"
PATH_SINGLE = "single_pass"
PATH_PER_OPTION = "per_option"


class ArcFormatError(AvalancheError):
    """ARC records that cannot be scored (missing or duplicate labels, bad answer keys...)."""


@dataclass(frozen=True)
class ArcQuestion:
    id: str
    stem: str
    labels: tuple[str, ...]
    texts: tuple[str, ...]
    answer: str


def _choices(record: Mapping) -> tuple[str | None, list[tuple[object, object]] | None]:
    question = record.get("question")
    if isinstance(question, Mapping):  # original AI2 layout
        stem, choices = question.get("stem"), question.get("choices")
        if isinstance(choices, Sequence) and not isinstance(choices, str):
            pairs = [
                (c.get("label"), c.get("text")) if isinstance(c, Mapping) else (None, None)
                for c in choices
            ]
            return stem, pairs
        return stem, None
    choices = record.get("choices")  # Hugging Face layout
    if isinstance(choices, Mapping):
        labels, texts = choices.get("label"), choices.get("text")
        if (
            isinstance(labels, Sequence)
            and isinstance(texts, Sequence)
            and len(labels) == len(texts)
        ):
            return question, list(zip(labels, texts, strict=True))
    return question if isinstance(question, str) else None, None


def normalize_arc_records(
    records: Iterable[Mapping], source: str = "arc_questions", detail: str | None = None
) -> list[ArcQuestion]:
    """Validate and convert ARC records; every problem is reported with the record's id.

    ``source`` is the catalog entry and ``detail`` where its data came from (e.g. the file).
    """
    where = f"'{source}'" + (f" ({detail})" if detail else "")
    questions: list[ArcQuestion] = []
    problems: list[str] = []
    seen: set[str] = set()
    for position, record in enumerate(records):
        if not isinstance(record, Mapping):
            problems.append(f"record {position}: not a JSON object")
            continue
        rid = str(record.get("id") or f"<record {position}>")
        stem, pairs = _choices(record)
        issues = []
        if not isinstance(stem, str) or not stem.strip():
            issues.append("empty question")
        if pairs is None:
            issues.append("no choices with labels and texts")
            pairs = []
        labels = [str(label).strip() if label is not None else "" for label, _ in pairs]
        texts = [str(text).strip() if text is not None else "" for _, text in pairs]
        if pairs and len(pairs) < 2:
            issues.append("fewer than 2 choices")
        if any(not label for label in labels):
            issues.append("a choice without a label")
        if len(set(labels)) != len(labels):
            duplicates = sorted({label for label in labels if labels.count(label) > 1})
            issues.append(f"duplicate labels {duplicates}")
        if any(not text for text in texts):
            issues.append("a choice without text")
        answer = str(record.get("answerKey") or "").strip()
        if not answer:
            issues.append("no answerKey")
        elif labels and answer not in labels:
            issues.append(f"answerKey '{answer}' is not among the labels {labels}")
        if rid in seen:
            issues.append("duplicate id")
        seen.add(rid)
        if issues:
            problems.append(f"{rid}: {', '.join(issues)}")
            continue
        questions.append(ArcQuestion(rid, stem.strip(), tuple(labels), tuple(texts), answer))
    if problems:
        listing = "\n  ".join(problems[:20])
        if len(problems) > 20:  # every malformed record is still named, by id
            rest = [problem.split(":", 1)[0] for problem in problems[20:]]
            listing += f"\n  and {len(rest)} more: {', '.join(rest)}"
        raise ArcFormatError(
            f"{len(problems)} malformed ARC records in {where}:\n  {listing}",
            "Fix or remove these records in the ARC file (each needs a question, at least two "
            "choices with distinct labels and texts, and an answerKey among the labels); "
            "records are never dropped silently.",
        )
    if not questions:
        raise ArcFormatError(
            f"{where} holds no ARC questions.",
            "Point the catalog entry arc_questions at a non-empty ARC file or split.",
        )
    return questions


def arc_prompt(question: ArcQuestion) -> str:
    """The SPEC §8 prompt: question, one ``{label}) {text}`` line per choice, ``Answer:``."""
    lines = [f"Question: {question.stem}", "Choices:"]
    lines += [
        f"{label}) {text}" for label, text in zip(question.labels, question.texts, strict=True)
    ]
    lines.append("Answer:")
    return "\n".join(lines)


def prompt_set_sha256(questions: Sequence[ArcQuestion]) -> str:
    """sha256 of the canonical JSON list of ``{id, prompt, continuations, answer}``."""
    payload = [
        {
            "id": q.id,
            "prompt": arc_prompt(q),
            "continuations": [f" {label}" for label in q.labels],
            "answer": q.answer,
        }
        for q in questions
    ]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def fit_prompt_to_context(
    prompt_ids: list[int],
    continuation_tokens: int,
    context: int | None,
    bos_token_id: int | None,
) -> tuple[list[int], int]:
    """(prompt, tokens dropped): the prompt left-truncated so prompt + continuation fits.

    Options and "Answer:" sit at the end of the SPEC prompt, so dropping the oldest tokens keeps
    what the score depends on (the usual left truncation of harness evaluations). A leading BOS is
    kept. Positions past the trained context would be extrapolated (RoPE) or out of range
    (learned absolute positions), so neither is allowed to happen silently.
    """
    if context is None or len(prompt_ids) + continuation_tokens <= context:
        return prompt_ids, 0
    keep_bos = bool(prompt_ids) and bos_token_id is not None and prompt_ids[0] == bos_token_id
    budget = context - continuation_tokens - int(keep_bos)
    if budget < 1:
        raise ValueError(
            f"an ARC continuation of {continuation_tokens} tokens does not fit the model's "
            f"context of {context} tokens; use a model with a longer context"
        )
    kept = prompt_ids[len(prompt_ids) - budget :]
    fitted = ([prompt_ids[0]] if keep_bos else []) + kept
    return fitted, len(prompt_ids) - len(fitted)


def question_progress(total_questions: int, description: str, enabled: bool = True) -> tqdm:
    """A progress bar in ARC questions (with questions/s), on stderr like the token bars of the
    forward passes (:func:`~avalanche_kedro.measure.forward.token_progress`); ``enabled`` is
    ``runtime.progress``. One bar may span several gains of one node."""
    return tqdm(
        total=int(total_questions),
        unit="question",
        desc=description,
        disable=not enabled,
        file=sys.stderr,
        mininterval=1.0,
    )


def _option_scores(
    loaded: LoadedModel,
    prompt_ids: list[int],
    continuations: list[list[int]],
    single_pass: bool = True,
):
    """(scores, path): summed fp32 log-probabilities of each continuation after the prompt."""
    model, device = loaded.model, loaded.device
    if single_pass and all(len(c) == 1 for c in continuations):
        ids = torch.tensor([prompt_ids], device=device)
        last = model(input_ids=ids, use_cache=False).logits[0, -1].float()
        count_tokens(ids.numel())
        log_probs = torch.log_softmax(last, dim=-1)
        return [float(log_probs[c[0]]) for c in continuations], PATH_SINGLE
    scores = []
    start = len(prompt_ids) - 1  # logits at position p predict token p + 1
    for continuation in continuations:
        ids = torch.tensor([prompt_ids + continuation], device=device)
        logits = model(input_ids=ids, use_cache=False).logits[0].float()
        count_tokens(ids.numel())
        log_probs = torch.log_softmax(logits[start : start + len(continuation)], dim=-1)
        picked = log_probs.gather(1, torch.tensor(continuation, device=device).unsqueeze(1))
        scores.append(float(picked.double().sum()))
    return scores, PATH_PER_OPTION


def score_arc(
    loaded: LoadedModel,
    questions: Sequence[ArcQuestion],
    g: float,
    intervention_id: str = MLP_GLOBAL,
    single_pass: bool = True,
    progress: bool | tqdm = False,
) -> pd.DataFrame:
    """One row per question: option scores, prediction, correctness and margin at gain ``g``.

    ``single_pass=False`` scores every option by its own pass even when all continuations are
    single tokens (the slow path, used to check that both paths agree). A prompt that would not
    fit the model's context with its longest continuation is left-truncated
    (:func:`fit_prompt_to_context`); ``prompt_tokens_dropped`` says by how much.
    ``progress`` is a flag (one bar for these questions) or a bar shared by several calls
    (advanced by one per question scored).
    """
    owns_bar = not isinstance(progress, tqdm)
    if owns_bar:
        bar = question_progress(len(questions), f"ARC g={g}", enabled=bool(progress))
    else:
        bar = progress
        bar.set_postfix_str(f"g={g}", refresh=False)
    try:
        return _score_questions(loaded, questions, g, intervention_id, single_pass, bar)
    finally:
        if owns_bar:
            bar.close()


def _score_questions(loaded, questions, g, intervention_id, single_pass, bar) -> pd.DataFrame:
    tokenizer = loaded.tokenizer
    context = context_length(loaded.model)
    rows = []
    gains = layer_gains(intervention_id, g, loaded.n_layers)
    with instrument(loaded.model, loaded.adapter, gains=gains), torch.inference_mode():
        for question in questions:
            # verbose=False: a prompt longer than the context is expected; it is cut below
            encoded = tokenizer(arc_prompt(question), add_special_tokens=True, verbose=False)
            prompt_ids = list(encoded["input_ids"])
            continuations = [
                list(tokenizer(f" {label}", add_special_tokens=False)["input_ids"])
                for label in question.labels
            ]
            prompt_ids, dropped = fit_prompt_to_context(
                prompt_ids,
                max(len(c) for c in continuations),
                context,
                getattr(tokenizer, "bos_token_id", None),
            )
            scores, path = _option_scores(loaded, prompt_ids, continuations, single_pass)
            scores_array = np.asarray(scores, dtype=np.float64)
            predicted = question.labels[int(np.argmax(scores_array))]  # first label on ties
            correct_index = question.labels.index(question.answer)
            others = np.delete(scores_array, correct_index)
            rows.append(
                {
                    "question_id": question.id,
                    "g": float(g),
                    "intervention_id": intervention_id,
                    "n_options": len(question.labels),
                    "scoring_path": path,
                    "prompt_tokens": len(prompt_ids),
                    "prompt_tokens_dropped": dropped,
                    "labels": list(question.labels),
                    "scores": scores_array,
                    "answer": question.answer,
                    "predicted": predicted,
                    "correct": predicted == question.answer,
                    "margin": float(scores_array[correct_index] - others.mean()),
                }
            )
            bar.update(1)
    return pd.DataFrame(rows)


def arc_accuracy(scores: pd.DataFrame, replicates: int) -> dict[str, float | int]:
    """Accuracy with a bootstrap CI over questions, and the mean margin.

    The questions are resampled with ``seed_of("boot", "ARC_MCQ")``: the same indices at every
    gain, so accuracies at g = 1 and g* are compared on the same resampled question sets.
    ``n_prompts_truncated`` counts the questions whose prompt was cut to the model's context.
    ``chance_accuracy`` = mean over questions of 1 / n_options: the expected accuracy of a
    uniform guess, the level below which the model has no power on these questions.
    """
    correct = scores["correct"].to_numpy(dtype=np.float64)
    indices = bootstrap_indices(len(correct), replicates, ARC_DATASET_ROLE)
    low, high = percentile_interval(correct[indices].mean(axis=1))
    return {
        "n_questions": int(len(correct)),
        "accuracy": float(correct.mean()),
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "chance_accuracy": float((1.0 / scores["n_options"].to_numpy(dtype=np.float64)).mean()),
        "mean_logprob_correct_minus_incorrect": float(scores["margin"].mean()),
        "n_single_pass": int((scores["scoring_path"] == PATH_SINGLE).sum()),
        "n_per_option": int((scores["scoring_path"] == PATH_PER_OPTION).sum()),
        "n_prompts_truncated": int((scores["prompt_tokens_dropped"] > 0).sum()),
    }


def paired_accuracy_difference(
    scores_reference: pd.DataFrame, scores: pd.DataFrame, replicates: int
) -> dict[str, float | int]:
    """``accuracy - accuracy_reference`` on the same questions, with its paired bootstrap CI.

    The questions are matched by ``question_id`` and resampled with the indices
    :func:`arc_accuracy` uses (``seed_of("boot", "ARC_MCQ")``), one set per replicate for both
    sides: ``diff_b = mean_b(correct) - mean_b(correct_reference)``. ``n_discordant`` counts
    the questions answered correctly on exactly one side (only those move the difference).
    """
    reference = scores_reference.set_index("question_id")["correct"]
    values = scores.set_index("question_id")["correct"]
    if sorted(reference.index) != sorted(values.index) or reference.index.has_duplicates:
        raise ValueError(
            "paired ARC accuracy needs the same questions, once each, on both sides; got "
            f"{len(reference)} and {len(values)} questions"
        )
    values = values.reindex(reference.index)
    difference = values.to_numpy(dtype=np.float64) - reference.to_numpy(dtype=np.float64)
    indices = bootstrap_indices(len(difference), replicates, ARC_DATASET_ROLE)
    low, high = percentile_interval(difference[indices].mean(axis=1))
    return {
        "accuracy_diff": float(difference.mean()),
        "accuracy_diff_ci_low": low,
        "accuracy_diff_ci_high": high,
        "n_discordant": int((difference != 0).sum()),
    }


def accuracy_difference_vs_gain(
    scores: pd.DataFrame, g: float, reference_g: float, replicates: int
) -> dict[str, float | int]:
    """:func:`paired_accuracy_difference` of gain ``g`` against ``reference_g`` from the
    per-question score table (every gain's rows, column ``g``)."""
    gains = scores["g"].to_numpy(dtype=np.float64)
    return paired_accuracy_difference(
        scores[np.isclose(gains, reference_g)], scores[np.isclose(gains, g)], replicates
    )
