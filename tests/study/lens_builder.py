"""Hand-made per-role lens tables (``lens_layers``, ``lens_alignment``,
``lens_collapse_crosstab``) that follow the lens data contract, for the T10/T11, F13/F14,
report and reporting-pipeline tests.

Three roles: ``base`` (collapse layer and cascade depth aligned beyond the token-shuffle
null), ``instruct`` (not distinguishable from the null) and ``untrained`` (random weights:
the collapse layer is constant at g = 1, so rho is undefined there; at g* it is defined and
near 0). Every role has L = 4 layers and N = 6 windows of T = 8 tokens (48 tokens); the
cross-tabulation of each (role, g condition, spike def, rate) sums to those 48 tokens and its
means are T11's ``mean_collapse_layer`` / ``mean_cascade_depth``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from avalanche_kedro.study.lens import RHO_COLUMNS

RUN_ID = "run-0123456789abcdef"
CONFIG_HASH = "c" * 64
ROLES = ["base", "instruct", "untrained"]
SPIKES = ["SPIKE_ONE_SIDED_POS", "SPIKE_TWO_SIDED_ABS"]
RATES = [0.001, 0.002, 0.004]
GSTAR = {"base": 1.1, "instruct": 0.9, "untrained": 1.25}
N_WINDOWS, N_LAYERS, T = 6, 4, 8
N_TOKENS = N_WINDOWS * T
D_FF = 64

#: Mean lens entropy (nats) per layer at g = 1: base falls most into layer 2 (by 2.5 nats),
#: instruct into layer 1 (by 2.0), the untrained role stays near ln(vocab).
ENTROPY = {
    "base": [6.0, 5.5, 3.0, 2.5],
    "instruct": [6.0, 4.0, 3.5, 3.0],
    "untrained": [9.0, 9.0, 8.95, 8.9],
}
KL = {
    "base": [3.0, 2.0, 0.5, 0.0],
    "instruct": [2.5, 1.0, 0.6, 0.0],
    "untrained": [0.4, 0.3, 0.1, 0.0],
}
OCCUPANCY = {
    "base": [0.30, 0.40, 0.50, 0.60],
    "instruct": [0.35, 0.35, 0.45, 0.50],
    "untrained": [0.20, 0.20, 0.20, 0.20],
}

#: (collapse layer, cascade depth) -> tokens at g = 1; every table sums to N_TOKENS.
CROSSTAB_G1 = {
    "base": {
        (0, 0): 6,
        (0, 1): 2,
        (1, 1): 5,
        (1, 2): 3,
        (2, 2): 8,
        (2, 3): 4,
        (3, 3): 10,
        (3, 4): 10,
    },
    "instruct": {(0, 1): 4, (0, 2): 4, (1, 1): 4, (1, 2): 4, (2, 2): 12, (3, 1): 10, (3, 2): 10},
    "untrained": {(3, 0): 20, (3, 1): 28},
}
#: At g*: the untrained role's collapse layer varies (rho defined); the others as at g = 1.
CROSSTAB_GSTAR = {
    **CROSSTAB_G1,
    "untrained": {(2, 1): 8, (3, 0): 16, (3, 1): 24},
}

#: T11 statistics per (role, g condition): rho, its CI, the null's mean and interval, p.
ALIGNMENT = {
    ("base", "g1"): (0.45, 0.30, 0.58, 0.02, -0.08, 0.11, 0.002),
    ("base", "gstar"): (0.50, 0.36, 0.62, 0.01, -0.09, 0.10, 0.001),
    ("instruct", "g1"): (0.06, -0.05, 0.17, 0.01, -0.09, 0.10, 0.41),
    ("instruct", "gstar"): (0.08, -0.03, 0.19, 0.00, -0.10, 0.10, 0.22),
    ("untrained", "g1"): None,  # collapse layer constant
    ("untrained", "gstar"): (0.03, -0.10, 0.15, 0.00, -0.10, 0.10, 0.60),
}
N_REPLICATES, N_PERMUTATIONS = 200, 999


def provenance(roles=ROLES) -> dict:
    models = {
        "base": {"model_id": "tiny-base", "source": "hub", "training_step": None},
        "instruct": {"model_id": "tiny-instruct", "source": "hub", "training_step": None},
        "untrained": {"model_id": "tiny-untrained", "source": "embedded", "training_step": None},
    }
    return {
        "run_id": RUN_ID,
        "config_hash": CONFIG_HASH,
        "code_version": "no_git_metadata",
        "roles": list(roles),
        "models": {role: models[role] for role in roles},
    }


def model_manifests(roles=ROLES) -> dict[str, dict]:
    return {role: {"model_id": f"tiny-{role}"} for role in roles}


def _g(role: str, condition: str) -> float:
    return 1.0 if condition == "g1" else GSTAR[role]


def _conditions(role: str):
    """Per condition of ``role``: its g condition and the row key of every lens table."""
    for condition, spike, rate in itertools.product(("g1", "gstar"), SPIKES, RATES):
        key = {
            "model_role": role,
            "g_condition": condition,
            "spike_def_id": spike,
            "target_rate": rate,
            "g": _g(role, condition),
        }
        yield condition, key


def lens_layers(role: str) -> pd.DataFrame:
    """``<role>.lens_layers``: at g* the entropy is 0.2 nats higher at every layer; the event
    rate is the target rate; half of the occupied sites lie in avalanches."""
    rows = []
    for condition, key in _conditions(role):
        shift = 0.0 if condition == "g1" else 0.2
        for layer in range(N_LAYERS):
            occupancy = OCCUPANCY[role][layer]
            rows.append(
                {
                    **key,
                    "layer": layer,
                    "n_tokens": N_TOKENS,
                    "mean_entropy_nats": ENTROPY[role][layer] + shift,
                    "mean_kl_to_final_nats": KL[role][layer],
                    "top1_agreement": [0.25, 0.5, 0.75, 1.0][layer],
                    "mean_p_next": [0.01, 0.05, 0.2, 0.3][layer],
                    "median_rank_next": [500.0, 100.0, 10.0, 3.0][layer],
                    "event_rate": key["target_rate"],
                    "occupancy": occupancy,
                    "avalanche_site_fraction": occupancy / 2,
                }
            )
    return pd.DataFrame(rows)


def _crosstab_of(role: str, condition: str) -> dict[tuple[int, int], int]:
    return (CROSSTAB_G1 if condition == "g1" else CROSSTAB_GSTAR)[role]


def lens_collapse_crosstab(role: str) -> pd.DataFrame:
    rows = []
    for condition, key in _conditions(role):
        for (collapse, depth), n in sorted(_crosstab_of(role, condition).items()):
            rows.append(
                {
                    **key,
                    "collapse_layer": collapse,
                    "cascade_depth": depth,
                    "n_tokens": n,
                }
            )
    return pd.DataFrame(rows)


#: bootstrap replicates stored per T11 row (``rho_replicates``) in the built frames
REPLICATE_GRID = 41


def lens_alignment(role: str) -> pd.DataFrame:
    rows = []
    for condition, key in _conditions(role):
        table = _crosstab_of(role, condition)
        assert sum(table.values()) == N_TOKENS
        collapse = sum(c * n for (c, _), n in table.items()) / N_TOKENS
        depth = sum(d * n for (_, d), n in table.items()) / N_TOKENS
        with_events = sum(n for (_, d), n in table.items() if d > 0) / N_TOKENS
        stats = ALIGNMENT[(role, condition)]
        record = {
            **key,
            "n_windows": N_WINDOWS,
            "n_tokens": N_TOKENS,
            "mean_collapse_layer": collapse,
            "mean_cascade_depth": depth,
            "frac_tokens_with_events": with_events,
            "n_replicates": N_REPLICATES,
            "n_null_permutations": N_PERMUTATIONS,
        }
        if stats is None:
            record.update(dict.fromkeys(RHO_COLUMNS, np.nan))
            record.update(defined=False, reason="collapse layer constant")
            record["rho_replicates"] = [np.nan] * REPLICATE_GRID
        else:
            rho, low, high, null_mean, null_low, null_high, p = stats
            record.update(
                spearman_rho=rho,
                rho_ci_low=low,
                rho_ci_high=high,
                null_rho_mean=null_mean,
                null_rho_low=null_low,
                null_rho_high=null_high,
                delta_rho_vs_null=rho - null_mean,
                p_value_vs_null=p,
                defined=True,
                reason="",
            )
            # replicate rhos spread evenly over the CI: paired differences are then exact
            record["rho_replicates"] = np.linspace(low, high, REPLICATE_GRID).tolist()
        record["seq_ids"] = list(range(N_WINDOWS))
        rows.append(record)
    return pd.DataFrame(rows)


def per_role(maker, roles=ROLES) -> dict[str, pd.DataFrame]:
    return {role: maker(role) for role in roles}


def make_t10(roles=ROLES) -> pd.DataFrame:
    from avalanche_kedro.study import lens

    return lens.build_t10(provenance(roles), model_manifests(roles), per_role(lens_layers, roles))


def make_t11(roles=ROLES, control_role: str | None = "untrained") -> pd.DataFrame:
    from avalanche_kedro.study import lens

    return lens.build_t11(
        provenance(roles),
        model_manifests(roles),
        per_role(lens_alignment, roles),
        control_role if control_role in roles else None,
    )
