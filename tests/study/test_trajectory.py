"""T09: a training series - its validation from the configuration, the paired differences to
step 0 and to the previous step (recomputed by hand, replicate by replicate, on the same
bootstrap indices), and the first step at which a statistic separates from step 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from avalanche_kedro.core.errors import ConfigurationError
from avalanche_kedro.study import control, trajectory
from avalanche_kedro.study.replication import ReplicationError
from tests.study import test_control as hand

ROLES = ["early", "middle", "late"]
STEPS = {"early": 0, "middle": 10, "late": 100}
GSTAR = {"early": 1.1, "middle": 0.9, "late": 1.0}
TRAJECTORY_KEY = f"{trajectory.BOOT_PREFIX}|{hand.SPIKE}|0.01"


@pytest.fixture(scope="module")
def inputs():
    # the hand-made counts of test_control's roles (seeds 3, 1, 2), with the series' own g*
    built = {
        "early": hand._role_inputs("untrained", 3),
        "middle": hand._role_inputs("base", 1),
        "late": hand._role_inputs("instruct", 2),
    }
    for role, g in GSTAR.items():
        built[role]["gstar"] = pd.DataFrame(
            [{"spike_def_id": hand.SPIKE, "target_rate": hand.RATE, "g_star": g}]
        )
    return built


def compute(inputs, roles=ROLES, steps=STEPS) -> pd.DataFrame:
    return trajectory.trajectory_differences(
        roles,
        steps,
        {role: f"model-{role}" for role in roles},
        {r: inputs[r]["gstar"] for r in roles},
        {r: inputs[r]["conditions"] for r in roles},
        {r: inputs[r]["windows"] for r in roles},
        {r: inputs[r]["nulls"] for r in roles},
        {r: inputs[r]["avalanches"] for r in roles},
        replicates=hand.B,
    )


# ---- the series from the configuration -------------------------------------------------------


def test_a_series_needs_unique_increasing_steps_before_anything_runs():
    models = {"a": {"step": 0}, "b": {"step": 4}, "c": {"step": "final"}}
    assert trajectory.check_series(["a", "b", "c"], models) == {"a": 0, "b": 4, "c": "final"}
    with pytest.raises(ConfigurationError, match=r"models\.b\.step = 0 does not come after"):
        trajectory.check_series(["a", "b"], {"a": {"step": 0}, "b": {"step": 0}})
    with pytest.raises(ConfigurationError, match=r"models\.b\.step = 4 does not come after"):
        trajectory.check_series(["c", "b"], models)  # final can only be last
    with pytest.raises(ConfigurationError, match=r"models\.b\.step is None"):
        trajectory.check_series(["a", "b"], {"a": {"step": 0}, "b": {}})
    for bad in (-1, 1.5, True, "step512"):
        with pytest.raises(ConfigurationError, match=r"models\.b\.step is"):
            trajectory.check_series(["a", "b"], {"a": {"step": 0}, "b": {"step": bad}})
    with pytest.raises(ConfigurationError, match="at least two model roles"):
        trajectory.check_series(["a"], models)


def test_recorded_steps_are_read_from_the_manifests_and_checked_again():
    manifests = {"a": {"training_step": 0}, "b": {"training_step": 200}}
    assert trajectory.resolved_steps(["a", "b"], manifests) == {"a": 0, "b": 200}
    with pytest.raises(ReplicationError, match="b.model_manifest records no integer"):
        trajectory.resolved_steps(["a", "b"], {"a": {"training_step": 0}, "b": {}})
    with pytest.raises(ReplicationError, match="not increasing: b is at step 200 and a"):
        trajectory.resolved_steps(["b", "a"], manifests)


def test_pairs_are_every_step_against_step_zero_and_against_its_predecessor():
    assert trajectory.trajectory_pairs(["s0", "s1", "s2"]) == [
        ("s1", "s0", "step0"),
        ("s2", "s0", "step0"),
        ("s1", "s0", "previous"),
        ("s2", "s1", "previous"),
    ]


# ---- the paired differences --------------------------------------------------------------------


def test_one_row_per_step_and_gain_condition_step_zero_without_differences(inputs):
    table = compute(inputs)
    assert len(table) == len(ROLES) * 2
    assert sorted(zip(table["model_role"], table["g_condition"], strict=True)) == sorted(
        (role, condition) for role in ROLES for condition in ("g1", "gstar")
    )
    first = table[table["model_role"] == "early"]
    differences = trajectory.diff_columns("step0") + trajectory.diff_columns("previous")
    assert first[differences].isna().all().all()
    assert set(table["reference_step"]) == {0}
    previous = table.drop_duplicates("model_role").set_index("model_role")["previous_step"]
    assert np.isnan(previous["early"]) and (previous["middle"], previous["late"]) == (0.0, 10.0)
    assert set(table["model_id"]) == {"model-early", "model-middle", "model-late"}


def test_the_first_step_after_zero_has_the_same_difference_to_both_references(inputs):
    middle = compute(inputs).query("model_role == 'middle'")
    for stat in control.STATS:
        for bound in ("", "_ci_low", "_ci_high"):
            a = middle[f"diff_{stat}_vs_step0{bound}"].to_numpy()
            b = middle[f"diff_{stat}_vs_previous{bound}"].to_numpy()
            assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize(
    ("reference", "kind"), [("early", "step0"), ("middle", "previous")], ids=["step0", "previous"]
)
@pytest.mark.parametrize("condition", ["gstar", "g1"])
def test_differences_of_the_last_step_equal_the_hand_computation(
    inputs, monkeypatch, reference, kind, condition
):
    monkeypatch.setattr(hand, "KEY", TRAJECTORY_KEY)  # the series' own bootstrap indices
    g_late, g_reference = (GSTAR["late"], GSTAR[reference]) if condition == "gstar" else (1.0, 1.0)
    expected = hand.expected_row(inputs, "late", reference, g_late, g_reference)
    row = compute(inputs).set_index(["model_role", "g_condition"]).loc[("late", condition)]
    for stat in ("b_tot", "delta_b_tot", "chi"):
        got = [row[f"diff_{stat}_vs_{kind}{b}"] for b in ("", "_ci_low", "_ci_high")]
        assert got == pytest.approx(list(expected[stat][:3]), rel=1e-12, abs=1e-12)


def test_first_separation_is_the_first_step_whose_ci_excludes_zero():
    rows = []
    # b_tot: separates at step 10 and stays; chi: separates at 10 only; gamma: never
    for step, b, chi, gamma in (
        (0, (np.nan, np.nan), (np.nan, np.nan), (np.nan, np.nan)),
        (1, (-0.1, 0.2), (-1.0, 1.0), (-0.2, 0.3)),
        (10, (0.05, 0.3), (0.5, 2.0), (-0.1, 0.1)),
        (100, (-0.4, -0.1), (-0.5, 0.5), (np.nan, np.nan)),
    ):
        rows.append(
            {
                "step": step,
                "spike_def_id": "S",
                "target_rate": 0.01,
                "g_condition": "g1",
                "diff_b_tot_vs_step0_ci_low": b[0],
                "diff_b_tot_vs_step0_ci_high": b[1],
                "diff_chi_vs_step0_ci_low": chi[0],
                "diff_chi_vs_step0_ci_high": chi[1],
                "diff_crackling_gamma_vs_step0_ci_low": gamma[0],
                "diff_crackling_gamma_vs_step0_ci_high": gamma[1],
            }
        )
    table = pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # any row order
    b = trajectory.first_separation(table, "b_tot").iloc[0]
    assert (b["first_step"], b["stays"], b["n_steps"]) == (10, True, 4)
    chi = trajectory.first_separation(table, "chi").iloc[0]
    assert (chi["first_step"], chi["stays"]) == (10, False)
    gamma = trajectory.first_separation(table, "crackling_gamma").iloc[0]
    assert gamma["first_step"] is None and not gamma["stays"]
    assert trajectory.first_separation(table, "b_tot", "gstar").empty
