"""ARC multiple choice (SPEC §8): record validation, prompts, option scores and accuracy."""

from __future__ import annotations

import hashlib
import json
import string

import numpy as np
import pandas as pd
import pytest
import torch

from avalanche_kedro.analysis.bootstrap import bootstrap_indices, percentile_interval
from avalanche_kedro.evaluation import arc
from avalanche_kedro.evaluation.arc import (
    PATH_PER_OPTION,
    PATH_SINGLE,
    ArcFormatError,
    ArcQuestion,
    accuracy_difference_vs_gain,
    arc_accuracy,
    arc_prompt,
    context_length,
    fit_prompt_to_context,
    normalize_arc_records,
    paired_accuracy_difference,
    prompt_set_sha256,
    score_arc,
)
from avalanche_kedro.measure.adapters import instrument
from avalanche_kedro.measure.gain import ATTN_GLOBAL, MLP_GLOBAL, layer_gains
from tests.conftest import SHARED_FIXTURES

ARC_FIXTURE = SHARED_FIXTURES / "ai2-arc-challenge" / "ARC-Challenge-Test.jsonl"


def ai2_record(rid, stem, labels, texts, answer):
    """A record in the original AI2 layout (the project's own file)."""
    return {
        "id": rid,
        "question": {
            "stem": stem,
            "choices": [{"text": t, "label": lab} for lab, t in zip(labels, texts, strict=True)],
        },
        "answerKey": answer,
    }


def hf_record(rid, stem, labels, texts, answer):
    """A record in the Hugging Face ``allenai/ai2_arc`` layout."""
    return {
        "id": rid,
        "question": stem,
        "choices": {"text": list(texts), "label": list(labels)},
        "answerKey": answer,
    }


GOOD = ("Q1", "Which keyword defines a function?", ["A", "B", "C"], ["def", "fn", "func"], "A")


# --- record validation ------------------------------------------------------------------------


def test_both_layouts_give_the_same_question():
    from_ai2 = normalize_arc_records([ai2_record(*GOOD)])
    from_hf = normalize_arc_records([hf_record(*GOOD)])
    expected = ArcQuestion(
        id="Q1",
        stem="Which keyword defines a function?",
        labels=("A", "B", "C"),
        texts=("def", "fn", "func"),
        answer="A",
    )
    assert from_ai2 == from_hf == [expected]


def test_order_is_kept_and_whitespace_is_stripped():
    records = [
        hf_record("Q2", "  Second?  ", [" 1", "2 "], [" yes", "no "], " 2"),
        ai2_record(*GOOD),
    ]
    questions = normalize_arc_records(records)
    assert [q.id for q in questions] == ["Q2", "Q1"]
    assert questions[0] == ArcQuestion("Q2", "Second?", ("1", "2"), ("yes", "no"), "2")


@pytest.mark.skipif(not ARC_FIXTURE.exists(), reason="shared ARC-Challenge fixture not present")
def test_the_real_arc_challenge_test_split_is_accepted_whole():
    records = [json.loads(line) for line in ARC_FIXTURE.read_text().splitlines()]
    questions = normalize_arc_records(records)
    assert len(questions) == len(records) == 1172
    assert {("1", "2", "3", "4"), ("A", "B", "C", "D")} <= {q.labels for q in questions}


BAD_CASES = {
    "missing label": (
        ai2_record("BAD_LABEL", "Stem?", ["A", "B"], ["x", "y"], "A"),
        "a choice without a label",
        lambda r: r["question"]["choices"][1].pop("label"),
    ),
    "hf labels missing": (
        hf_record("BAD_HF_LABELS", "Stem?", ["A", "B"], ["x", "y"], "A"),
        "no choices with labels and texts",
        lambda r: r["choices"].pop("label"),
    ),
    "hf labels shorter than texts": (
        hf_record("BAD_HF_SHORT", "Stem?", ["A", "B"], ["x", "y"], "A"),
        "no choices with labels and texts",
        lambda r: r["choices"]["label"].pop(),
    ),
    "duplicate labels": (
        ai2_record("BAD_DUP", "Stem?", ["A", "B", "A"], ["x", "y", "z"], "A"),
        "duplicate labels ['A']",
        None,
    ),
    "answer not among labels": (
        hf_record("BAD_KEY", "Stem?", ["A", "B"], ["x", "y"], "E"),
        "answerKey 'E' is not among the labels ['A', 'B']",
        None,
    ),
    "no answer key": (
        ai2_record("BAD_NOKEY", "Stem?", ["A", "B"], ["x", "y"], ""),
        "no answerKey",
        None,
    ),
    "empty question": (
        ai2_record("BAD_EMPTY", "   ", ["A", "B"], ["x", "y"], "A"),
        "empty question",
        None,
    ),
    "missing question": (
        hf_record("BAD_NOQ", "x", ["A", "B"], ["x", "y"], "A"),
        "empty question",
        lambda r: r.pop("question"),
    ),
    "one choice": (
        hf_record("BAD_ONE", "Stem?", ["A"], ["x"], "A"),
        "fewer than 2 choices",
        None,
    ),
    "no choices": (
        ai2_record("BAD_NONE", "Stem?", [], [], "A"),
        "no choices with labels and texts",
        lambda r: r["question"].pop("choices"),
    ),
    "empty choice text": (
        ai2_record("BAD_TEXT", "Stem?", ["A", "B"], ["x", " "], "A"),
        "a choice without text",
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_each_kind_of_malformed_record_is_named_with_its_id(case):
    record, issue, mutate = BAD_CASES[case]
    record = json.loads(json.dumps(record))
    if mutate is not None:
        mutate(record)
    with pytest.raises(ArcFormatError) as info:
        normalize_arc_records([ai2_record(*GOOD), record], "my_arc")
    message = str(info.value)
    assert "1 malformed ARC records in 'my_arc'" in message
    assert f"{record['id']}: " in message and issue in message
    assert "Q1" not in message  # the valid record is not reported
    assert "never dropped silently" in message


def test_duplicate_ids_are_reported():
    records = [ai2_record(*GOOD), hf_record("Q1", "Other?", ["A", "B"], ["x", "y"], "B")]
    with pytest.raises(ArcFormatError, match="Q1: duplicate id"):
        normalize_arc_records(records)


def test_every_malformed_record_of_a_file_is_listed_and_none_is_returned():
    records = [
        ai2_record("OK_1", "Fine?", ["A", "B"], ["x", "y"], "A"),
        ai2_record("BAD_DUP", "Stem?", ["A", "A"], ["x", "y"], "A"),
        hf_record("OK_2", "Fine too?", ["1", "2"], ["x", "y"], "2"),
        hf_record("BAD_KEY", "Stem?", ["A", "B"], ["x", "y"], "C"),
        ai2_record("BAD_EMPTY", "", ["A", "B"], ["x", "y"], "B"),
        hf_record("BAD_ONE", "Stem?", ["A"], ["x"], "A"),
        "not a record",
        {"question": "No id?", "choices": {"text": ["x"], "label": ["A"]}, "answerKey": "B"},
    ]
    with pytest.raises(ArcFormatError) as info:
        normalize_arc_records(records, "arc_questions")
    message = str(info.value)
    assert "6 malformed ARC records in 'arc_questions'" in message
    for rid in ["BAD_DUP", "BAD_KEY", "BAD_EMPTY", "BAD_ONE", "<record 7>"]:
        assert f"{rid}: " in message
    assert "record 6: not a JSON object" in message
    assert "OK_1" not in message and "OK_2" not in message
    # One record with several problems lists all of them.
    assert "fewer than 2 choices, answerKey 'B' is not among the labels ['A']" in message


def test_many_malformed_records_are_counted():
    records = [ai2_record(f"BAD_{i:02d}", "", ["A", "B"], ["x", "y"], "A") for i in range(25)]
    with pytest.raises(ArcFormatError) as info:
        normalize_arc_records(records)
    message = str(info.value)
    assert "25 malformed ARC records" in message
    assert "BAD_00: empty question" in message and "BAD_19: empty question" in message


def test_an_empty_file_is_an_error():
    with pytest.raises(ArcFormatError, match="holds no ARC questions"):
        normalize_arc_records([], "arc_questions")


# --- prompts and the prompt hash ----------------------------------------------------------------


def test_prompt_is_the_spec_format():
    question = ArcQuestion("Q", "What is 2 + 2?", ("A", "B", "C"), ("3", "4", "22"), "B")
    assert arc_prompt(question) == (
        "Question: What is 2 + 2?\nChoices:\nA) 3\nB) 4\nC) 22\nAnswer:"
    )


def test_prompt_set_hash_is_the_sha256_of_the_canonical_json():
    questions = normalize_arc_records(
        [ai2_record(*GOOD), hf_record("Q2", "Pick one?", ["1", "2"], ["é", "b"], "2")]
    )
    payload = [
        {
            "id": "Q1",
            "prompt": "Question: Which keyword defines a function?\nChoices:\nA) def\nB) fn\n"
            "C) func\nAnswer:",
            "continuations": [" A", " B", " C"],
            "answer": "A",
        },
        {
            "id": "Q2",
            "prompt": "Question: Pick one?\nChoices:\n1) é\n2) b\nAnswer:",
            "continuations": [" 1", " 2"],
            "answer": "2",
        },
    ]
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = prompt_set_sha256(questions)
    assert digest == hashlib.sha256(canonical.encode("ascii")).hexdigest()
    assert len(digest) == 64 and set(digest) <= set(string.hexdigits.lower())
    assert prompt_set_sha256(questions[::-1]) != digest  # order matters
    changed = [questions[0], ArcQuestion("Q2", "Pick one?", ("1", "2"), ("é", "b"), "1")]
    assert prompt_set_sha256(changed) != digest  # so does the answer key


# --- option scores on the small model ------------------------------------------------------------


def n_tokens(tokenizer, label: str) -> int:
    return len(tokenizer(f" {label}", add_special_tokens=False)["input_ids"])


@pytest.fixture(scope="module")
def single_token_labels(small_model) -> list[str]:
    candidates = list(string.ascii_uppercase + string.ascii_lowercase + string.digits)
    labels = [c for c in candidates if n_tokens(small_model.tokenizer, c) == 1]
    assert len(labels) >= 4, "the small tokenizer should have single-token letters"
    return labels[:4]


MULTI_TOKEN_LABELS = ["Alpha7", "Bravo8", "123456"]


@pytest.fixture(scope="module")
def questions(single_token_labels) -> list[ArcQuestion]:
    a, b, c, d = single_token_labels
    return normalize_arc_records(
        [
            ai2_record(
                "S1",
                "Which keyword starts a function definition?",
                [a, b, c, d],
                ["def", "fn", "function", "lambda"],
                a,
            ),
            hf_record(
                "S2", "Which built-in type is immutable?", [a, b, c], ["list", "tuple", "dict"], b
            ),
            hf_record(
                "S3", "What does len('abc') return?", [a, b, c, d], ["2", "3", "4", "None"], d
            ),
            ai2_record(
                "M1",
                "Which statement leaves a loop early?",
                MULTI_TOKEN_LABELS,
                ["break", "continue", "pass"],
                "Bravo8",
            ),
            # Mixed: one single-token and one multi-token label -> per-option path.
            ai2_record("M2", "Is None falsy?", [a, "Alpha7"], ["yes", "no"], a),
        ]
    )


def manual_score(loaded, question: ArcQuestion, label: str) -> float:
    """Summed float64 log-probs of the tokens of ``" label"`` after the question's prompt (own pass).

    The prompt is cut to the model's context as scoring does (the test model has 64 positions).
    """
    tokenizer = loaded.tokenizer
    prompt_ids = tokenizer(arc_prompt(question), add_special_tokens=True)["input_ids"]
    longest = max(n_tokens(tokenizer, option) for option in question.labels)
    prompt_ids, _ = fit_prompt_to_context(
        list(prompt_ids), longest, context_length(loaded.model), tokenizer.bos_token_id
    )
    continuation = tokenizer(f" {label}", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([list(prompt_ids) + list(continuation)])
    with torch.inference_mode():
        logits = loaded.model(input_ids=ids, use_cache=False).logits[0].double()
    log_probs = torch.log_softmax(logits, dim=-1)
    total = 0.0
    for k, token in enumerate(continuation):
        total += float(log_probs[len(prompt_ids) - 1 + k, token])  # position p predicts p + 1
    return total


@pytest.fixture(scope="module")
def scored(small_model, questions):
    return {
        "single": score_arc(small_model, questions, 1.0),
        "per_option": score_arc(small_model, questions, 1.0, single_pass=False),
        "g07": score_arc(small_model, questions, 0.7),
    }


def test_the_multi_token_labels_really_are_multi_token(small_model, single_token_labels):
    for label in MULTI_TOKEN_LABELS:
        assert n_tokens(small_model.tokenizer, label) > 1, label
    for label in single_token_labels:
        assert n_tokens(small_model.tokenizer, label) == 1, label


def test_scoring_paths(scored):
    paths = dict(
        zip(scored["single"]["question_id"], scored["single"]["scoring_path"], strict=True)
    )
    assert paths == {
        "S1": PATH_SINGLE,
        "S2": PATH_SINGLE,
        "S3": PATH_SINGLE,
        "M1": PATH_PER_OPTION,
        "M2": PATH_PER_OPTION,
    }
    assert (scored["per_option"]["scoring_path"] == PATH_PER_OPTION).all()


def test_single_pass_scores_equal_per_option_scores(scored):
    single, per_option = scored["single"], scored["per_option"]
    assert list(single["question_id"]) == list(per_option["question_id"])
    for one, other in zip(single.itertuples(), per_option.itertuples(), strict=True):
        np.testing.assert_allclose(one.scores, other.scores, rtol=0, atol=1e-4)
        assert one.predicted == other.predicted
        assert one.margin == pytest.approx(other.margin, abs=1e-4)


def test_scores_equal_a_manual_log_prob_sum(small_model, questions, scored):
    table = scored["single"].set_index("question_id")
    for question in questions:
        expected = [manual_score(small_model, question, label) for label in question.labels]
        np.testing.assert_allclose(table.loc[question.id, "scores"], expected, rtol=1e-5, atol=1e-5)
        assert (np.asarray(expected) < 0).all()


def test_multi_token_question_is_scored_option_by_option(small_model, questions, scored):
    row = scored["single"].set_index("question_id").loc["M1"]
    assert row["scoring_path"] == PATH_PER_OPTION
    assert list(row["labels"]) == MULTI_TOKEN_LABELS
    question = next(q for q in questions if q.id == "M1")
    expected = [manual_score(small_model, question, label) for label in MULTI_TOKEN_LABELS]
    np.testing.assert_allclose(row["scores"], expected, rtol=1e-5, atol=1e-5)


def test_prediction_correctness_and_margin(scored, questions):
    answers = {q.id: q for q in questions}
    for table in scored.values():
        for row in table.itertuples():
            question = answers[row.question_id]
            scores = np.asarray(row.scores)
            assert list(row.labels) == list(question.labels)
            assert row.n_options == len(question.labels) == len(scores)
            assert row.predicted == question.labels[int(np.argmax(scores))]
            assert row.correct == (row.predicted == question.answer)
            k = question.labels.index(question.answer)
            assert row.margin == pytest.approx(scores[k] - np.delete(scores, k).mean(), rel=1e-12)
            assert row.answer == question.answer
            assert row.prompt_tokens > 0


def test_prediction_is_the_first_label_on_ties(small_model, monkeypatch):
    question = ArcQuestion("T", "Tie?", ("X", "Y", "Z"), ("x", "y", "z"), "Z")
    monkeypatch.setattr(arc, "_option_scores", lambda *a, **k: ([-2.0, -1.0, -1.0], PATH_SINGLE))
    row = score_arc(small_model, [question], 1.0).iloc[0]
    assert row["predicted"] == "Y" and not row["correct"]
    assert row["margin"] == pytest.approx(-1.0 - (-1.5))


def test_the_gain_is_applied(small_model, questions, scored):
    one, low = scored["single"], scored["g07"]
    assert (low["g"] == 0.7).all() and (one["g"] == 1.0).all()
    assert (low["intervention_id"] == MLP_GLOBAL).all()
    for a, b in zip(one["scores"], low["scores"], strict=True):
        assert not np.allclose(a, b, rtol=0, atol=1e-6)
    # At g = 0.7 the scores equal a manual pass with the MLP_GLOBAL gain hooks installed.
    question = questions[0]
    gains = layer_gains(MLP_GLOBAL, 0.7, small_model.n_layers)
    with instrument(small_model.model, small_model.adapter, gains=gains):
        expected = [manual_score(small_model, question, label) for label in question.labels]
    np.testing.assert_allclose(low["scores"].iloc[0], expected, rtol=1e-5, atol=1e-5)


def test_the_intervention_is_applied(small_model, questions, scored):
    attn = score_arc(small_model, questions[:1], 0.7, intervention_id=ATTN_GLOBAL)
    assert attn["intervention_id"].iloc[0] == ATTN_GLOBAL
    assert not np.allclose(attn["scores"].iloc[0], scored["g07"]["scores"].iloc[0], atol=1e-6)
    # The hooks are removed afterwards: g = 1 reproduces the first scores exactly.
    again = score_arc(small_model, questions[:1], 1.0)
    np.testing.assert_array_equal(again["scores"].iloc[0], scored["single"]["scores"].iloc[0])


# --- progress ------------------------------------------------------------------------------------


def test_the_progress_bar_counts_questions_to_its_total(small_model, questions, scored, capsys):
    table = score_arc(small_model, questions, 1.0, progress=True)
    err = capsys.readouterr().err
    # tqdm's last refresh (on close): "ARC g=1.0: 100%|...| 5/5 [..., ...question/s]"
    last = err.strip().split("\r")[-1]
    assert last.startswith("ARC g=1.0: 100%") and f"{len(questions)}/{len(questions)}" in last
    assert "question/s" in last
    # the bar changes nothing that is measured
    pd.testing.assert_frame_equal(table, scored["single"])


def test_one_bar_spans_several_gains(small_model, questions, capsys):
    bar = arc.question_progress(2 * len(questions), "ARC scoring", enabled=True)
    score_arc(small_model, questions, 1.0, progress=bar)
    assert bar.n == len(questions)  # one step per question scored
    score_arc(small_model, questions, 0.7, progress=bar)
    assert bar.n == bar.total == 10 and not bar.disable
    bar.close()
    last = capsys.readouterr().err.strip().split("\r")[-1]
    assert last.startswith("ARC scoring: 100%") and "10/10" in last and "g=0.7" in last


def test_progress_off_prints_nothing(small_model, questions, capsys):
    bar = arc.question_progress(len(questions), "ARC scoring", enabled=False)
    score_arc(small_model, questions, 1.0, progress=bar)
    score_arc(small_model, questions, 1.0)  # the default: no bar
    bar.close()
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("progress", [True, False])
def test_the_node_has_one_bar_over_every_gain(small_checkpoint, progress, capsys):
    from avalanche_kedro.pipelines.calibration.arc_nodes import score_arc_questions

    records = [hf_record(f"Q{i}", f"Pick {i}?", ["A", "B"], ["yes", "no"], "A") for i in range(3)]
    gstar_A = pd.DataFrame({"g_star": [0.9, 1.0, 0.9]})  # distinct gains: 0.9 and 1.0
    runtime = {"device": "cpu", "dtype": "float32", "progress": progress}
    capsys.readouterr()
    scores, manifest = score_arc_questions(small_checkpoint, records, gstar_A, runtime, {})
    assert manifest["gains"] == [0.9, 1.0] and len(scores) == 2 * 3
    bars = [line for line in capsys.readouterr().err.split("\r") if "ARC" in line]
    if progress:  # gains x questions = 6 steps, in one bar
        assert bars and bars[-1].startswith("ARC scoring: 100%") and "6/6" in bars[-1]
    else:
        assert bars == []


# --- prompts longer than the model's context ---------------------------------------------------


def test_a_prompt_that_fits_is_left_alone():
    assert fit_prompt_to_context([1, 5, 6, 7], 2, context=6, bos_token_id=1) == ([1, 5, 6, 7], 0)
    assert fit_prompt_to_context([1, 5, 6, 7], 2, context=None, bos_token_id=1) == (
        [1, 5, 6, 7],
        0,
    )


def test_a_long_prompt_loses_its_oldest_tokens_and_keeps_bos():
    # context 6, continuation 2: BOS + the last 3 prompt tokens + 2 continuation tokens = 6
    assert fit_prompt_to_context([1, 10, 11, 12, 13, 14], 2, context=6, bos_token_id=1) == (
        [1, 12, 13, 14],
        2,
    )
    # no BOS at the front: the last 4 tokens
    assert fit_prompt_to_context([10, 11, 12, 13, 14], 2, context=6, bos_token_id=1) == (
        [11, 12, 13, 14],
        1,
    )


def test_a_continuation_longer_than_the_context_is_an_error():
    with pytest.raises(ValueError, match="does not fit the model's context of 3 tokens"):
        fit_prompt_to_context([1, 10, 11], 3, context=3, bos_token_id=1)


def test_a_long_question_is_scored_within_the_context(small_model, single_token_labels):
    context = context_length(small_model.model)
    assert context == small_model.model.config.max_position_embeddings
    a, b = single_token_labels[:2]
    long_question = ArcQuestion(
        "LONG", "Which one? " + "Read the code again. " * context, (a, b), ("x", "y"), a
    )
    row = score_arc(small_model, [long_question], 1.0).iloc[0]
    assert row["prompt_tokens"] + 1 == context  # one single-token continuation after it
    assert row["prompt_tokens_dropped"] > 0
    # the score is the manual log-prob of the label after the left-truncated prompt
    tokenizer = small_model.tokenizer
    full = tokenizer(arc_prompt(long_question), add_special_tokens=True)["input_ids"]
    kept, dropped = fit_prompt_to_context(list(full), 1, context, tokenizer.bos_token_id)
    assert dropped == row["prompt_tokens_dropped"] == len(full) - len(kept)
    with torch.inference_mode():
        logits = small_model.model(input_ids=torch.tensor([kept]), use_cache=False).logits
    log_probs = torch.log_softmax(logits[0, -1].double(), dim=-1)
    expected = [
        float(log_probs[tokenizer(f" {label}", add_special_tokens=False)["input_ids"][0]])
        for label in (a, b)
    ]
    np.testing.assert_allclose(row["scores"], expected, rtol=1e-5, atol=1e-5)


def test_only_questions_beyond_the_context_are_cut(small_model, questions, scored):
    tokenizer, context = small_model.tokenizer, context_length(small_model.model)
    expected = {}
    for question in questions:
        full = len(tokenizer(arc_prompt(question), add_special_tokens=True)["input_ids"])
        longest = max(n_tokens(tokenizer, label) for label in question.labels)
        expected[question.id] = max(0, full + longest - context)
    assert any(expected.values()) and not all(expected.values())  # both cases are exercised
    for table in scored.values():
        dropped = dict(zip(table["question_id"], table["prompt_tokens_dropped"], strict=True))
        assert dropped == expected


# --- accuracy --------------------------------------------------------------------------------


def test_arc_accuracy_hand_example():
    table = pd.DataFrame(
        {
            "correct": [True, False, True, True],
            "margin": [1.0, -2.0, 0.5, 0.5],
            "scoring_path": [PATH_SINGLE, PATH_SINGLE, PATH_PER_OPTION, PATH_SINGLE],
            "prompt_tokens_dropped": [0, 12, 0, 3],
            "n_options": [4, 4, 3, 5],
        }
    )
    result = arc_accuracy(table, replicates=300)
    indices = bootstrap_indices(4, 300, "ARC_MCQ")
    low, high = percentile_interval(np.array([1.0, 0.0, 1.0, 1.0])[indices].mean(axis=1))
    assert result == {
        "n_questions": 4,
        "accuracy": 0.75,
        "accuracy_ci_low": low,
        "accuracy_ci_high": high,
        "chance_accuracy": (1 / 4 + 1 / 4 + 1 / 3 + 1 / 5) / 4,  # 0.2583…
        "mean_logprob_correct_minus_incorrect": 0.0,
        "n_single_pass": 3,
        "n_per_option": 1,
        "n_prompts_truncated": 2,
    }
    assert 0.0 <= low <= 0.75 <= high <= 1.0
    assert arc_accuracy(table, replicates=300) == result  # seeded: the same CI every time


def test_paired_accuracy_difference_hand_example():
    """Questions matched by id (stored in another order at g*), resampled with ARC's indices
    once for both gains: two questions lost at g*, one gained."""
    g1 = pd.DataFrame({"question_id": ["a", "b", "c", "d", "e"], "correct": [1, 1, 1, 0, 0]})
    gstar = pd.DataFrame({"question_id": ["e", "d", "c", "b", "a"], "correct": [0, 1, 1, 0, 0]})
    paired = paired_accuracy_difference(g1.astype({"correct": bool}), gstar, 400)
    difference = np.array([-1.0, -1.0, 0.0, 1.0, 0.0])  # a, b lost; d gained
    assert paired["accuracy_diff"] == pytest.approx(-0.2)
    assert paired["n_discordant"] == 3
    indices = bootstrap_indices(5, 400, "ARC_MCQ")
    low, high = percentile_interval(difference[indices].mean(axis=1))
    assert (paired["accuracy_diff_ci_low"], paired["accuracy_diff_ci_high"]) == (low, high)
    with pytest.raises(ValueError, match="same questions"):
        paired_accuracy_difference(g1, gstar.iloc[:4], 10)


def test_accuracy_difference_vs_gain_picks_the_two_gains():
    scores = pd.DataFrame(
        {
            "question_id": ["a", "b", "a", "b"],
            "g": [1.0, 1.0, 0.7, 0.7],
            "correct": [True, True, False, True],
        }
    )
    paired = accuracy_difference_vs_gain(scores, 0.7, 1.0, 100)
    assert paired["accuracy_diff"] == -0.5 and paired["n_discordant"] == 1
    itself = accuracy_difference_vs_gain(scores, 1.0, 1.0, 100)
    assert (itself["accuracy_diff_ci_low"], itself["accuracy_diff_ci_high"]) == (0.0, 0.0)
