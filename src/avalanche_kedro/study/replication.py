"""Replication across model roles: paired comparisons at each role's g* (SPEC §9).

Every role sees the same windows and the same null permutations (seeds never involve the role),
so two roles can be compared window by window: per (spike definition, target rate), each role's
delta_b_tot (real - permutation null) and chi at its own g* are re-computed on the same
bootstrap replicates (``seed_of("boot", "replication|A|<spike def>|<rate>")``) and their
difference ``role - reference`` gets a paired CI. The reference is the first role listed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..analysis.bootstrap import (
    DEFAULT_REPLICATES,
    bootstrap_indices,
    paired_b_tot,
    percentile_interval,
    resample_weights,
    susceptibility_replicates,
)
from ..analysis.lattice import susceptibility_of_totals
from ..analysis.nulls import NULL_PERM
from ..core.errors import AvalancheError
from ..core.seeds import format_number
from ..core.threads import single_threaded_blas
from ..measure.gain import MLP_GLOBAL
from ..measure.sweep import NULL_NONE


class ReplicationError(AvalancheError):
    """Model roles that cannot be compared pairwise."""


def check_comparable_roles(
    model_manifests: Mapping[str, dict],
    slice_manifests: Mapping[str, dict],
    instrumentation_reports: Mapping[str, dict],
) -> None:
    """Roles must share the tokenizer, the windows and the layer count for paired tables."""
    roles = list(model_manifests)
    reference = roles[0]
    problems = []
    for role in roles[1:]:
        if (
            model_manifests[role]["tokenizer_sha256"]
            != model_manifests[reference]["tokenizer_sha256"]
        ):
            problems.append(
                f"{role}.model_manifest and {reference}.model_manifest have different tokenizers "
                f"({model_manifests[role]['tokenizer_sha256'][:12]} vs "
                f"{model_manifests[reference]['tokenizer_sha256'][:12]}), so the roles saw "
                "different windows"
            )
        hashes = {s["slice"]: s["sha256"] for s in slice_manifests[role]["slices"]}
        reference_hashes = {s["slice"]: s["sha256"] for s in slice_manifests[reference]["slices"]}
        if hashes != reference_hashes:
            problems.append(f"{role}.slice_manifest and {reference}.slice_manifest differ")
        layers = instrumentation_reports[role]["n_layers"]
        reference_layers = instrumentation_reports[reference]["n_layers"]
        if layers != reference_layers:
            problems.append(
                f"{role} has {layers} layers and {reference} has {reference_layers} "
                "(per-layer rate profiles and depth branching are not comparable)"
            )
    if problems:
        raise ReplicationError(
            "The model roles cannot be compared pairwise: " + "; ".join(problems) + ".",
            "Replicate within one model family (same tokenizer and depth, e.g. base vs instruct "
            "or training checkpoints as revisions), or run the roles as separate studies "
            "(kedro run --namespaces <role>) and skip the replication pipeline.",
        )


def _model_label(role: str, manifest: Mapping) -> str:
    """``role (checkpoint @ requested revision, commit <12 hex>)`` for error messages."""
    checkpoint = manifest.get("model_id") or manifest.get("checkpoint") or "?"
    if manifest.get("source") != "hub":
        return f"{role} ({manifest.get('checkpoint') or checkpoint})"
    requested = manifest.get("revision_requested") or "main"
    commit = str(manifest.get("revision") or "?")[:12]
    return f"{role} ({checkpoint} @ {requested}, commit {commit})"


def check_distinct_weights(model_manifests: Mapping[str, dict]) -> None:
    """Every role must have its own weights: two roles with the same ``weights_sha256``
    (sha256 over the weight files' names and content hashes, see
    :mod:`avalanche_kedro.measure.weights`) raise :class:`ReplicationError`.

    A training series measured as revisions (e.g. Pythia's ``step<N>`` branches) is only a
    series if each step serves its own tensors; some Pythia branches are known to serve the
    weights of another step, which would make two points of a trajectory the same model.
    Roles whose hash is unknown (``None``, a manifest written before the field existed) are
    not compared.
    """
    groups: dict[str, list[str]] = {}
    for role, manifest in model_manifests.items():
        digest = (manifest or {}).get("weights_sha256")
        if digest:
            groups.setdefault(str(digest), []).append(role)
    clashes = [roles for roles in groups.values() if len(roles) > 1]
    if not clashes:
        return
    problems = [
        " and ".join(_model_label(role, model_manifests[role]) for role in roles)
        + f" have identical weights (weights_sha256 {digest[:12]})"
        for digest, roles in groups.items()
        if len(roles) > 1
    ]
    hub = [
        f"https://huggingface.co/{m.get('model_id')}/tree/{m.get('revision_requested') or 'main'}"
        for roles in clashes
        for m in (model_manifests[r] for r in roles)
        if m.get("source") == "hub"
    ]
    duplicated = [role for roles in clashes for role in roles[1:]]
    raise ReplicationError(
        "Two model roles would be measured on the same weights: " + "; ".join(problems) + ".",
        "Pin another revision for one of them (models.<role>.revision, e.g. models."
        f"{duplicated[0]}.revision), or check the branch on the Hub"
        + (f" ({', '.join(hub)})" if hub else "")
        + ": some Pythia branches serve the weights of another step. If the roles are meant to "
        f"be the same model, remove {', '.join(duplicated)} from model_roles.",
    )


class RoleCondition(NamedTuple):
    """One role's real MLP_GLOBAL condition of dataset A at gain ``g``: its per-window counts
    (``real``) and permutation-null counts (``null``), both sorted by ``seq_id``."""

    g: float
    cond_id: int
    real: pd.DataFrame
    null: pd.DataFrame


def role_at_gain(
    conditions: pd.DataFrame,
    windows: pd.DataFrame,
    nulls: pd.DataFrame,
    spike_def: str,
    rate: float,
    g: float,
    role: str = "",
) -> RoleCondition:
    """The real MLP_GLOBAL condition at (spike def, rate, g) with its windows and null windows."""
    match = conditions[
        (conditions["null_id"] == NULL_NONE)
        & (conditions["intervention_id"] == MLP_GLOBAL)
        & (conditions["spike_def_id"] == spike_def)
        & (conditions["target_rate"] == rate)
        & (conditions["g"] == g)
    ]
    if len(match) != 1:
        raise ReplicationError(
            f"{role or 'A role'} has {len(match)} real MLP_GLOBAL conditions for {spike_def}, "
            f"r = {format_number(rate)}, g = {format_number(g)} (expected one).",
            "Run every role with the same gain_grid (it must contain 1.0 and every g*) and "
            "the same spike definitions and target rates.",
        )
    cond_id = int(match["cond_id"].item())
    real = windows[windows["cond_id"] == cond_id].sort_values("seq_id")
    null = nulls[(nulls["cond_id"] == cond_id) & (nulls["null_id"] == NULL_PERM)].sort_values(
        "seq_id"
    )
    return RoleCondition(float(g), cond_id, real, null)


def role_at_gstar(
    role: str,
    gstar: pd.DataFrame,
    conditions: pd.DataFrame,
    windows: pd.DataFrame,
    nulls: pd.DataFrame,
    spike_def: str,
    rate: float,
) -> RoleCondition:
    """:func:`role_at_gain` at the role's own g* for (spike def, rate) from its ``gstar_A``."""
    g_star = float(
        gstar[(gstar["spike_def_id"] == spike_def) & (gstar["target_rate"] == rate)][
            "g_star"
        ].item()
    )
    return role_at_gain(conditions, windows, nulls, spike_def, rate, g_star, role)


def check_same_windows(measured: Mapping[str, RoleCondition], reference: str) -> np.ndarray:
    """The reference's sorted seq_ids; every role must cover exactly the same windows."""
    seq_ids = measured[reference].real["seq_id"].to_numpy()
    for role, condition in measured.items():
        if not np.array_equal(condition.real["seq_id"].to_numpy(), seq_ids):
            raise ReplicationError(
                f"{role} and {reference} rasters cover different windows.",
                "Run every role with the same windows parameters and tokenizer.",
            )
    return seq_ids


def paired_delta_b_tot(weights: np.ndarray, real: pd.DataFrame, null: pd.DataFrame):
    """delta_b_tot = b_tot(real) - b_tot(null): the point value and its replicates."""
    real_point, real_replicates = paired_b_tot(weights, real)
    null_point, null_replicates = paired_b_tot(weights, null)
    return real_point - null_point, real_replicates - null_replicates


def paired_chi(indices: np.ndarray, real: pd.DataFrame):
    """chi = var(Y, ddof=0) / (mean(Y) + 1e-8) of the per-window totals: point and replicates."""
    return (
        susceptibility_of_totals(real["events"]),
        susceptibility_replicates(indices, real["events"]),
    )


@single_threaded_blas
def replication_table(
    roles: Sequence[str],
    model_ids: Mapping[str, str],
    gstar: Mapping[str, pd.DataFrame],
    conditions: Mapping[str, pd.DataFrame],
    window_counts: Mapping[str, pd.DataFrame],
    null_window_counts: Mapping[str, pd.DataFrame],
    replicates: int = DEFAULT_REPLICATES,
) -> pd.DataFrame:
    """One row per (spike def, target rate, role other than the reference)."""
    reference = roles[0]
    rows = []
    for row in gstar[reference].itertuples():
        spike_def, rate = row.spike_def_id, float(row.target_rate)
        measured = {
            role: role_at_gstar(
                role,
                gstar[role],
                conditions[role],
                window_counts[role],
                null_window_counts[role],
                spike_def,
                rate,
            )
            for role in roles
        }
        seq_ids = check_same_windows(measured, reference)
        indices = bootstrap_indices(
            len(seq_ids), replicates, f"replication|A|{spike_def}|{format_number(rate)}"
        )
        weights = resample_weights(indices, len(seq_ids))

        ref = measured[reference]
        ref_delta, ref_delta_reps = paired_delta_b_tot(weights, ref.real, ref.null)
        ref_chi, ref_chi_reps = paired_chi(indices, ref.real)
        for role in roles[1:]:
            other = measured[role]
            role_delta, role_delta_reps = paired_delta_b_tot(weights, other.real, other.null)
            role_chi, role_chi_reps = paired_chi(indices, other.real)
            diff_low, diff_high = percentile_interval(role_delta_reps - ref_delta_reps)
            chi_low, chi_high = percentile_interval(role_chi_reps - ref_chi_reps)
            rows.append(
                {
                    "spike_def_id": spike_def,
                    "target_rate": rate,
                    "reference_role": reference,
                    "compared_role": role,
                    "reference_model_id": model_ids[reference],
                    "compared_model_id": model_ids[role],
                    "g_star_reference": ref.g,
                    "g_star_compared": other.g,
                    "delta_b_tot_reference": ref_delta,
                    "delta_b_tot_compared": role_delta,
                    "diff_delta_b_tot": role_delta - ref_delta,
                    "diff_delta_b_tot_ci_low": diff_low,
                    "diff_delta_b_tot_ci_high": diff_high,
                    "chi_reference": ref_chi,
                    "chi_compared": role_chi,
                    "diff_chi": role_chi - ref_chi,
                    "diff_chi_ci_low": chi_low,
                    "diff_chi_ci_high": chi_high,
                    "n_sequences": int(len(seq_ids)),
                    "bootstrap_replicates": int(replicates),
                }
            )
    return pd.DataFrame(rows)
