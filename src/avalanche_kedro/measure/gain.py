"""Gain interventions: which layers' MLP or attention output is scaled by g (SPEC §2).

The residual update of block ``l`` becomes ``h <- h + a_l * attn + m_l * mlp`` where the per-layer
factors ``(m_l, a_l)`` depend on the intervention:

* ``MLP_GLOBAL``: ``m_l = g`` in every layer, ``a_l = 1``.
* ``ATTN_GLOBAL``: ``a_l = g`` in every layer, ``m_l = 1``.
* ``MLP_BAND_EARLY | MID | LATE``: ``m_l = g`` for ``l`` in ``[0, c1)``, ``[c1, c2)`` or
  ``[c2, L)`` and 1 elsewhere, with ``c1 = max(1, floor(L/3))`` and
  ``c2 = max(c1 + 1, floor(2L/3))``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import ConfigurationError

MLP_GLOBAL = "MLP_GLOBAL"
ATTN_GLOBAL = "ATTN_GLOBAL"
MLP_BAND_EARLY = "MLP_BAND_EARLY"
MLP_BAND_MID = "MLP_BAND_MID"
MLP_BAND_LATE = "MLP_BAND_LATE"
INTERVENTIONS = (MLP_GLOBAL, ATTN_GLOBAL, MLP_BAND_EARLY, MLP_BAND_MID, MLP_BAND_LATE)


def band_edges(n_layers: int) -> tuple[int, int]:
    """``(c1, c2)`` with ``c1 = max(1, L // 3)`` and ``c2 = max(c1 + 1, 2L // 3)``."""
    c1 = max(1, n_layers // 3)
    c2 = max(c1 + 1, (2 * n_layers) // 3)
    return c1, c2


@dataclass(frozen=True)
class LayerGains:
    """Per-layer multipliers of the MLP and attention contributions to the residual stream."""

    mlp: tuple[float, ...]
    attn: tuple[float, ...]

    @property
    def is_identity(self) -> bool:
        return all(x == 1.0 for x in self.mlp) and all(x == 1.0 for x in self.attn)


def layer_gains(intervention_id: str, g: float, n_layers: int) -> LayerGains:
    """Per-layer gains of an intervention at gain ``g`` for a model with ``n_layers`` blocks."""
    g = float(g)
    ones = [1.0] * n_layers
    if intervention_id == MLP_GLOBAL:
        return LayerGains(mlp=(g,) * n_layers, attn=tuple(ones))
    if intervention_id == ATTN_GLOBAL:
        return LayerGains(mlp=tuple(ones), attn=(g,) * n_layers)
    bands = {MLP_BAND_EARLY: 0, MLP_BAND_MID: 1, MLP_BAND_LATE: 2}
    if intervention_id in bands:
        if n_layers < 3:
            raise ConfigurationError(
                f"{intervention_id} needs at least 3 layers; the model has {n_layers}.",
                "Drop the MLP band interventions for this model.",
            )
        c1, c2 = band_edges(n_layers)
        lo, hi = [(0, c1), (c1, c2), (c2, n_layers)][bands[intervention_id]]
        mlp = [g if lo <= layer < hi else 1.0 for layer in range(n_layers)]
        return LayerGains(mlp=tuple(mlp), attn=tuple(ones))
    raise ConfigurationError(
        f"Unknown intervention '{intervention_id}'.", f"Use one of {list(INTERVENTIONS)}."
    )
