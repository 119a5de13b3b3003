"""Seed rule and condition keys (SPEC §1, §7), checked against hashlib directly.

The condition table built from these keys is tested in ``tests/measure/test_conditions.py``.
"""

from __future__ import annotations

import hashlib

from avalanche_kedro.core.seeds import STUDY_SEED, condition_key, format_number, seed_of


def _expected_seed(text: str) -> int:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16)


def test_study_seed_is_1337():
    assert STUDY_SEED == 1337


def test_seed_of_select_a_matches_sha256():
    expected = int(hashlib.sha256(b"1337|select|A").hexdigest()[:8], 16)
    assert seed_of("select", "A") == expected
    assert 0 <= seed_of("select", "A") < 2**32


def test_seed_of_stringifies_every_field():
    # ints, floats and strings are joined with str(): "1337|perm|A|SPIKE|1e-05|7|3"
    expected = _expected_seed("1337|perm|A|SPIKE|1e-05|7|3")
    assert seed_of("perm", "A", "SPIKE", 1e-5, 7, 3) == expected
    # the string "7" and the int 7 hash identically, by construction of the rule
    assert seed_of("token_shuffle", "B", 7) == seed_of("token_shuffle", "B", "7")
    assert seed_of("token_shuffle", "B", 7) == _expected_seed("1337|token_shuffle|B|7")


def test_seed_of_distinguishes_fields_and_study_seed():
    assert seed_of("select", "A") != seed_of("select", "B")
    assert seed_of("select", "A", study_seed=42) == _expected_seed("42|select|A")
    assert seed_of() == _expected_seed("1337")


def test_condition_key_canonical_text():
    assert (
        condition_key("A", "SPIKE_ONE_SIDED_POS", 1e-5, 0.85, "MLP_GLOBAL")
        == "A|SPIKE_ONE_SIDED_POS|1e-05|0.85|MLP_GLOBAL"
    )
    # the gain 1 renders as "1.0" whether given as int or float
    assert condition_key("B", "SPIKE_TWO_SIDED_ABS", 2e-5, 1, "ATTN_GLOBAL") == (
        "B|SPIKE_TWO_SIDED_ABS|2e-05|1.0|ATTN_GLOBAL"
    )
    assert condition_key("B", "SPIKE_TWO_SIDED_ABS", 2e-5, 1.0, "ATTN_GLOBAL") == (
        "B|SPIKE_TWO_SIDED_ABS|2e-05|1.0|ATTN_GLOBAL"
    )


def test_format_number_is_spelling_independent():
    assert format_number(1) == "1.0"
    assert format_number(0.00001) == "1e-05"
    assert format_number(float("1.0e-5")) == "1e-05"
    assert format_number(1.3) == "1.3"
    assert format_number(8e-5) == "8e-05"
