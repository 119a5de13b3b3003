"""The logit lens next to the cascades, across roles: T10_LENS and T11_COLLAPSE_VS_CASCADE.

The lens pipeline of each model role (dataset A analysis windows, MLP_GLOBAL at g = 1 and at
the role's g* of every spike definition and target rate) saves two small tables that are
stacked here over the roles, in ``model_roles`` order:

- ``<role>.lens_layers`` -> **T10_LENS**, one row per (role, g condition, spike definition,
  target rate, layer); ``layer`` is the residual stream after block ``layer`` (0-based) decoded
  through the final norm and the unembedding, ``p_l = softmax(U · norm(h_l))``:

  * ``mean_entropy_nats`` = mean over the N·T tokens of ``H(p_l) = -Σ_v p_l(v) ln p_l(v)``;
  * ``mean_kl_to_final_nats`` = mean of ``KL(p_final ‖ p_l) = Σ_v p_final(v) ln(p_final / p_l)``
    (0 at the last layer);
  * ``top1_agreement`` = fraction of tokens with ``argmax p_l = argmax p_final`` (1 at the last
    layer); ``mean_p_next`` / ``median_rank_next`` = mean probability / median 1-based rank of
    the true next token (tokens with a next token only);
  * ``event_rate`` = events of the layer / (N·T·d_ff) (events per unit per token),
    ``occupancy`` = fraction of the layer's N·T (window, token) sites with at least one event,
    ``avalanche_site_fraction`` = fraction of those sites inside an avalanche of >= 2 sites
    (ADJ_4N): part of a cascade rather than an isolated event (so <= ``occupancy``).

- ``<role>.lens_alignment`` -> **T11_COLLAPSE_VS_CASCADE**, one row per (role, g condition,
  spike definition, target rate): per token the *collapse layer* (first layer from which the
  lens top-1 stays the final top-1) next to its *cascade depth* (layers spanned by events at that
  token), their Spearman rank correlation ``spearman_rho`` with a 95 % percentile CI over the
  window bootstrap, against the token-shuffle null (cascade depths permuted across the tokens of
  each window: ``null_rho_mean`` with its 2.5/97.5 % interval), ``delta_rho_vs_null = rho -
  null_rho_mean`` and the two-sided permutation p ``(1 + #{|rho_null - m| >= |rho - m|}) /
  (1 + P)``. ``defined`` is False (rho and its intervals NaN, ``reason`` says why) when no token
  has an event or the collapse layer is constant.

Both tables start with the provenance columns (:data:`.tables.PROVENANCE_COLUMNS`,
``dataset_role = A``), then the columns below, then ``opt_`` extras, and are validated by
:data:`T10_SCHEMA` / :data:`T11_SCHEMA` on every save and load (``conf/base/catalog_tables.yml``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from ..analysis import lens_alignment
from ..analysis.bootstrap import percentile_interval
from ..core.errors import ArtifactError
from ..measure.thresholds import SPIKE_ONE_SIDED_POS
from . import tables
from .schemas import G_CONDITIONS, NONNEGATIVE, PROBABILITY, RATE, _optional, _provenance, full_grid

T10_ID = tables.TABLE_IDS["T10"]
T11_ID = tables.TABLE_IDS["T11"]
#: The keys of one T11 row; T10 adds ``layer``.
KEYS = ["g_condition", "spike_def_id", "target_rate"]

#: T10: the keys, then the per-layer lens and event columns of analysis.lens_alignment
T10_COLUMNS = [
    *KEYS,
    "g",
    *lens_alignment.LAYER_LENS_COLUMNS,
    *[c for c in lens_alignment.LAYER_SITE_COLUMNS if c not in ("layer", "n_sites", "events")],
]
#: T11's paired comparison with the untrained control (empty / NaN on the control's own rows,
#: without a control, or where the two roles were not measured on the same windows).
CONTROL_COLUMNS = [
    "control_role",
    "diff_rho_vs_control",
    "diff_rho_ci_low_vs_control",
    "diff_rho_ci_high_vs_control",
]
#: T11 values that are NaN when rho is undefined (and only then).
RHO_COLUMNS = list(lens_alignment.RHO_KEYS)
#: T11: the keys, the statistics of analysis.lens_alignment in its order, the control columns.
T11_COLUMNS = ["g_condition", "spike_def_id", "target_rate", "g", *lens_alignment.ALIGNMENT_KEYS]
T11_COLUMNS += CONTROL_COLUMNS
#: Float tolerance of the consistency checks (the values are float32 means).
ATOL = 1e-6


# --------------------------------------------------------------------------------------------
# The tables


def _stack(
    model_manifests: Mapping[str, dict], per_role: Mapping[str, pd.DataFrame], name: str
) -> pd.DataFrame:
    """Every role's frame, in role order, with its provenance identity (a frame that names
    another role than the one it was saved for is refused)."""
    for role in model_manifests:
        frame = per_role[role]
        if "model_role" in frame and not (frame["model_role"].astype(str) == role).all():
            raise ArtifactError(
                f"{role}.{name} holds rows of the roles "
                f"{sorted(set(frame['model_role'].astype(str)))}, not only '{role}'.",
                f"Rerun the lens pipeline of '{role}' (kedro run --pipelines lens).",
            )
    return tables._stack_roles(model_manifests, per_role, "A")


def _finish(
    table: pd.DataFrame,
    columns: Sequence[str],
    provenance: Mapping[str, Any],
    stage_id: str,
    keys: Sequence[str],
    roles: Sequence[str],
) -> pd.DataFrame:
    """:func:`.tables._finish`, rows sorted by role in ``roles`` order, then by ``keys``."""
    finished = tables._finish(
        table, columns, tables._opt_extras(table, columns), provenance, stage_id, keys
    )
    rank = finished["model_role"].map({role: i for i, role in enumerate(roles)})
    return finished.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)


def build_t10(
    provenance: Mapping[str, Any],
    model_manifests: Mapping[str, dict],
    lens_layers: Mapping[str, pd.DataFrame],
) -> pd.DataFrame:
    """T10_LENS: every role's ``lens_layers`` stacked, one row per (role, g condition, spike
    def, target rate, layer), rows in role order then by those keys."""
    table = _stack(model_manifests, lens_layers, "lens_layers")
    for column in ("layer", "n_tokens"):
        table[column] = table[column].astype("int64")
    return _finish(table, T10_COLUMNS, provenance, T10_ID, [*KEYS, "layer"], list(model_manifests))


def paired_with_control(
    lens_alignment: Mapping[str, pd.DataFrame], control_role: str | None
) -> dict[str, pd.DataFrame]:
    """Each role's ``lens_alignment`` with :data:`CONTROL_COLUMNS` against ``control_role``.

    ``diff_rho_vs_control = rho - rho_control`` at the same (g condition, spike definition,
    target rate), and its 95 % CI is the 2.5 / 97.5 % percentiles of the replicate
    differences ``rho_b - rho_control,b``: both roles' bootstraps resample the same windows
    (``rho_replicates`` from one index matrix per spike definition and rate, seeded without
    role or gain), so the comparison is a paired bootstrap. It is left NaN when the two roles
    were decoded on different windows (``seq_ids``) or either rho is undefined.
    """
    out = {}
    control = lens_alignment.get(control_role) if control_role else None
    for role, frame in lens_alignment.items():
        frame = frame.copy()
        frame["control_role"] = "" if control is None or role == control_role else control_role
        for column in CONTROL_COLUMNS[1:]:
            frame[column] = np.nan
        if control is not None and role != control_role:
            by_key = {tuple(row[k] for k in KEYS): row for _, row in control.iterrows()}
            for index, row in frame.iterrows():
                other = by_key.get(tuple(row[k] for k in KEYS))
                if other is None or list(row["seq_ids"]) != list(other["seq_ids"]):
                    continue  # not measured on the same windows: no paired comparison
                if not (row["defined"] and other["defined"]):
                    continue
                # the paired percentile CI of the replicate differences, as T08's
                low, high = percentile_interval(
                    np.asarray(row["rho_replicates"], float)
                    - np.asarray(other["rho_replicates"], float)
                )
                if not np.isfinite(low):
                    continue  # no replicate where both rhos are defined
                frame.loc[index, CONTROL_COLUMNS[1:]] = [
                    float(row["spearman_rho"]) - float(other["spearman_rho"]),
                    low,
                    high,
                ]
        out[role] = frame
    return out


def build_t11(
    provenance: Mapping[str, Any],
    model_manifests: Mapping[str, dict],
    lens_alignment: Mapping[str, pd.DataFrame],
    control_role: str | None = None,
) -> pd.DataFrame:
    """T11_COLLAPSE_VS_CASCADE: every role's ``lens_alignment`` stacked, one row per (role, g
    condition, spike def, target rate), rows in role order then by those keys, with the paired
    comparison against ``control_role`` (:func:`paired_with_control`)."""
    if all("rho_replicates" in frame for frame in lens_alignment.values()):
        lens_alignment = paired_with_control(lens_alignment, control_role)
    else:  # saved before the paired comparison existed: no control columns to compute
        lens_alignment = {
            role: frame.assign(control_role="", **dict.fromkeys(CONTROL_COLUMNS[1:], np.nan))
            for role, frame in lens_alignment.items()
        }
    # the replicates and window ids served the pairing; the table keeps its summary
    lens_alignment = {
        role: frame.drop(columns=["rho_replicates", "seq_ids"], errors="ignore")
        for role, frame in lens_alignment.items()
    }
    table = _stack(model_manifests, lens_alignment, "lens_alignment")
    for column in ("n_windows", "n_tokens", "n_replicates", "n_null_permutations"):
        table[column] = table[column].astype("int64")
    table["defined"] = table["defined"].astype(bool)
    table["reason"] = table["reason"].fillna("").astype(str)
    return _finish(table, T11_COLUMNS, provenance, T11_ID, KEYS, list(model_manifests))


# --------------------------------------------------------------------------------------------
# Reading the tables (figures and report)


def primary_condition(table: pd.DataFrame) -> tuple[str, float]:
    """The (spike definition, target rate) a single-condition view shows, as F01 chooses it:
    ``SPIKE_ONE_SIDED_POS`` when present (else the first in sorted order) and the middle target
    rate (the upper middle for an even count)."""
    spikes = sorted(str(s) for s in table["spike_def_id"].unique())
    spike = SPIKE_ONE_SIDED_POS if SPIKE_ONE_SIDED_POS in spikes else spikes[0]
    rates = sorted({float(r) for r in table.loc[table["spike_def_id"] == spike, "target_rate"]})
    return spike, rates[len(rates) // 2]


def untrained_roles(
    roles: Sequence[str],
    provenance: Mapping[str, Any] | None = None,
    control_role: str | None = None,
) -> list[str]:
    """The roles that are untrained, in ``roles`` order: the configured control role
    (``replication.control_role``) and every role whose model the run provenance records at
    training step 0 or as an embedded model with random weights (no training step)."""
    models = (provenance or {}).get("models") or {}
    found = []
    for role in roles:
        model = models.get(role) or {}
        step = model.get("training_step")
        random_weights = model.get("source") == "embedded" and step is None
        if role == control_role or random_weights or str(step).strip() == "0":
            found.append(role)
    return found


def steepest_entropy_drop(rows: pd.DataFrame) -> tuple[int | None, float]:
    """``(l, H(l-1) - H(l))`` for the layer ``l >= 1`` where the mean lens entropy falls most
    from the layer before (nats; the first such layer on ties); ``(None, nan)`` with one
    layer. ``rows`` are the T10 rows of one (role, g condition, spike def, rate)."""
    ordered = rows.sort_values("layer")
    entropy = ordered["mean_entropy_nats"].to_numpy(dtype=float)
    if entropy.size < 2:
        return None, float("nan")
    drops = entropy[:-1] - entropy[1:]
    i = int(np.argmax(drops))
    return int(ordered["layer"].iloc[i + 1]), float(drops[i])


# --------------------------------------------------------------------------------------------
# Schemas (here rather than in .schemas: they need this module's columns)


def _t10_grid(frame: pd.DataFrame) -> bool:
    """Per role: one row per (g condition, spike def, rate, layer), layers 0..L-1 for every
    (g condition, spike def, rate), every role on the same (g condition, spike def, rate) grid."""
    if frame.empty or frame.duplicated(["model_role", *KEYS, "layer"]).any():
        return False
    grids = set()
    for _, part in frame.groupby("model_role", sort=False):
        layers = sorted(part["layer"].unique())
        if layers != list(range(len(layers))):
            return False
        conditions = part[KEYS].drop_duplicates()
        if len(part) != len(conditions) * len(layers):
            return False
        grids.add(tuple(sorted(map(tuple, conditions.astype(str).to_numpy().tolist()))))
    return len(grids) == 1


def _t10_consistent(frame: pd.DataFrame) -> bool:
    """g = 1 on g1 rows and one g per condition; one token count per role; avalanche sites are
    occupied sites; the last layer is the final distribution (KL 0, top-1 agreement 1);
    p(next) and rank(next) NaN for a whole role or not at all."""
    if not np.allclose(frame.loc[frame["g_condition"] == "g1", "g"], 1.0, rtol=0, atol=1e-12):
        return False
    per_condition = frame.groupby(["model_role", *KEYS])
    if (per_condition["g"].nunique() != 1).any():
        return False
    if (frame.groupby("model_role")["n_tokens"].nunique() != 1).any():
        return False
    if (frame["avalanche_site_fraction"] > frame["occupancy"] + 1e-12).any():
        return False
    last = frame["layer"] == frame.groupby("model_role")["layer"].transform("max")
    if (frame.loc[last, "mean_kl_to_final_nats"].abs() > ATOL).any():
        return False
    if not np.allclose(frame.loc[last, "top1_agreement"], 1.0, rtol=0, atol=ATOL):
        return False
    for column in ("mean_p_next", "median_rank_next"):
        missing = frame[column].isna().groupby(frame["model_role"]).agg(["any", "all"])
        if (missing["any"] != missing["all"]).any():
            return False
    return True


T10_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "g_condition": pa.Column(str, G_CONDITIONS),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g": pa.Column(float, NONNEGATIVE),
        "layer": pa.Column(int, NONNEGATIVE),
        "n_tokens": pa.Column(int, pa.Check.gt(0)),
        # float32 entropies and KLs of (nearly) one-hot or equal distributions can round a hair
        # below 0
        "mean_entropy_nats": pa.Column(float, pa.Check.ge(-ATOL)),
        "mean_kl_to_final_nats": pa.Column(float, pa.Check.ge(-ATOL)),
        "top1_agreement": pa.Column(float, PROBABILITY),
        "mean_p_next": pa.Column(float, PROBABILITY, nullable=True),
        "median_rank_next": pa.Column(float, pa.Check.ge(1.0), nullable=True),
        "event_rate": pa.Column(float, PROBABILITY),
        "occupancy": pa.Column(float, PROBABILITY),
        "avalanche_site_fraction": pa.Column(float, PROBABILITY),
        **_optional(),
    },
    checks=[
        pa.Check(
            _t10_grid,
            name="T10: per role one row per g_condition x spike_def_id x target_rate x layer, "
            "layers 0..L-1, the same condition grid for every role",
        ),
        pa.Check(
            _t10_consistent,
            name="T10: g = 1 at g1, one g and n_tokens per condition, avalanche sites <= "
            "occupied sites, KL 0 and top-1 agreement 1 at the last layer, p(next) NaN only for "
            "a whole role",
        ),
    ],
    strict=True,
    name="T10_LENS",
)


def _t11_consistent(frame: pd.DataFrame) -> bool:
    """``defined`` exactly where rho is finite, every rho value finite then and a reason
    otherwise; ordered intervals; delta = rho - null mean; 1/(1+P) <= p <= 1; g = 1 at g1."""
    defined = frame["defined"].astype(bool)
    if not (np.isfinite(frame["spearman_rho"].astype(float)) == defined).all():
        return False
    if frame.loc[defined, RHO_COLUMNS].isna().any().any():
        return False
    reasons = frame["reason"].fillna("").astype(str).str.len() > 0
    if not (reasons == ~defined).all():
        return False
    for low, high in (("rho_ci_low", "rho_ci_high"), ("null_rho_low", "null_rho_high")):
        if (frame[low].astype(float) > frame[high].astype(float)).any():  # NaN compares False
            return False
    rows = frame[defined]
    expected = rows["spearman_rho"] - rows["null_rho_mean"]
    if not np.allclose(rows["delta_rho_vs_null"], expected, rtol=0, atol=1e-9):
        return False
    floor = 1.0 / (1.0 + rows["n_null_permutations"].astype(float))
    if (rows["p_value_vs_null"] < floor - 1e-12).any() or (rows["n_replicates"] < 1).any():
        return False
    return bool(np.allclose(frame.loc[frame["g_condition"] == "g1", "g"], 1.0, rtol=0, atol=1e-12))


_CORRELATION = pa.Check.in_range(-1.0 - 1e-9, 1.0 + 1e-9)
T11_SCHEMA = pa.DataFrameSchema(
    {
        **_provenance(),
        "g_condition": pa.Column(str, G_CONDITIONS),
        "spike_def_id": pa.Column(str),
        "target_rate": pa.Column(float, RATE),
        "g": pa.Column(float, NONNEGATIVE),
        "n_windows": pa.Column(int, pa.Check.gt(0)),
        "n_tokens": pa.Column(int, pa.Check.gt(0)),
        "mean_collapse_layer": pa.Column(float, NONNEGATIVE),
        "mean_cascade_depth": pa.Column(float, NONNEGATIVE),
        "frac_tokens_with_events": pa.Column(float, PROBABILITY),
        **{
            column: pa.Column(float, _CORRELATION, nullable=True)
            for column in RHO_COLUMNS[:6]  # rho, its CI and the null's mean and interval
        },
        "delta_rho_vs_null": pa.Column(float, pa.Check.in_range(-2.0, 2.0), nullable=True),
        "p_value_vs_null": pa.Column(
            float, pa.Check.in_range(0.0, 1.0, include_min=False), nullable=True
        ),
        "n_replicates": pa.Column(int, NONNEGATIVE),
        "n_null_permutations": pa.Column(int, NONNEGATIVE),
        "defined": pa.Column(bool),
        "reason": pa.Column(str),
        "control_role": pa.Column(str),
        **{
            column: pa.Column(float, pa.Check.in_range(-2.0, 2.0), nullable=True)
            for column in CONTROL_COLUMNS[1:]
        },
        **_optional(),
    },
    checks=[
        full_grid(["model_role", *KEYS], "T11"),
        pa.Check(
            _t11_consistent,
            name="T11: rho NaN exactly where not defined (with a reason), ordered intervals, "
            "delta = rho - null mean, p >= 1/(1+P), g = 1 at g1",
        ),
    ],
    strict=True,
    name="T11_COLLAPSE_VS_CASCADE",
)
