"""Numbers and row citations in the report's sentences: exact strings."""

from __future__ import annotations

import pytest

from avalanche_kedro.study.report import formatting


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.00037, "0.00037"),
        (1e-5, "1e-05"),
        (0.7, "0.7"),
        (1, "1.0"),
        (0.1 + 0.2, "0.30000000000000004"),
    ],
)
def test_key_number_is_the_shortest_float_repr(value, text):
    assert formatting.key_number(value) == text


@pytest.mark.parametrize(
    ("value", "digits", "text"),
    [
        (None, 4, "n/a"),
        (float("nan"), 4, "n/a"),
        (float("-inf"), 4, "n/a"),
        (0.123456, 4, "0.1235"),
        (2, 4, "2"),
        (1 / 3, 2, "0.33"),
        (1234.56, 4, "1235"),  # whole numbers from 1000 on
        (-1500.4, 4, "-1500"),
        (999.96, 4, "1000"),  # rounds up to 4 significant digits, below the cut
        (2.5e-5, 4, "2.5e-05"),
        ("0.25", 4, "0.25"),
    ],
)
def test_num_gives_four_significant_digits_or_n_a(value, digits, text):
    assert formatting.num(value, digits) == text


def test_signed_always_has_a_sign():
    assert formatting.signed(0.05) == "+0.05"
    assert formatting.signed(-0.2) == "-0.2"
    assert formatting.signed(0.0) == "+0"
    assert formatting.signed(0.123456) == "+0.123"
    assert formatting.signed(0.123456, digits=2) == "+0.12"
    assert formatting.signed(1234.5) == "+1.23e+03"
    assert formatting.signed(float("nan")) == "n/a"


def test_ci_brackets_both_bounds():
    assert formatting.ci(0.1, 0.2) == "[0.1, 0.2]"
    assert formatting.ci(-0.012345, 1500.2) == "[-0.01235, 1500]"
    assert formatting.ci(None, float("nan")) == "[n/a, n/a]"


def test_cite_names_the_row_key_of_each_table():
    spike = "SPIKE_ONE_SIDED_POS"
    assert formatting.cite("T01", "base", spike, 0.00037, g=0.7) == (
        "`T01[base, SPIKE_ONE_SIDED_POS, r=0.00037, g=0.7]`"
    )
    assert formatting.cite("T01", "base", spike, 1e-4, g=1) == (
        "`T01[base, SPIKE_ONE_SIDED_POS, r=0.0001, g=1.0]`"
    )
    assert formatting.cite("T02", "instruct", spike, 1e-4, g_condition="gstar") == (
        "`T02[instruct, SPIKE_ONE_SIDED_POS, r=0.0001, gstar]`"
    )
    assert formatting.cite(
        "T06", "base", spike, 1e-4, g_condition="g1", intervention="MLP_GLOBAL"
    ) == ("`T06[base, SPIKE_ONE_SIDED_POS, r=0.0001, g1, MLP_GLOBAL]`")
    assert (
        formatting.cite("T01", "base", spike, 1e-4) == "`T01[base, SPIKE_ONE_SIDED_POS, r=0.0001]`"
    )


def test_finite_accepts_only_finite_numbers():
    assert formatting._finite(1, 2.5, "0.5")
    assert formatting._finite()  # nothing to check
    assert not formatting._finite(1.0, None)
    assert not formatting._finite(float("nan"))
    assert not formatting._finite(float("inf"))
    assert not formatting._finite("not a number")
    assert not formatting._finite([1.0])
