"""The logit lens: what the network predicts after each block (seeds 001 and 003).

The lens distribution of layer ``l`` at token ``t`` decodes the residual stream after block
``l`` as if it were the last one: ``p_l = softmax(f(U · P(norm(h_l)) + b))`` with the model's
own final norm ``norm``, optional output projection ``P`` (OPT), unembedding ``U`` (bias
``b`` where the head has one) and logit transform ``f`` (Gemma's final soft-capping
``c · tanh(z / c)``, Granite's division by ``logits_scaling``, identity elsewhere). At the
last block it is the model's own next-token distribution, which :func:`lens_self_check`
verifies before anything is measured.

Precision (the seeds' policy): the residual is cast to fp32, the final norm runs as an fp32
copy (its statistics in fp32), the unembedding rows are cast to fp32 chunk by chunk and every
logit is fp32 whatever the model's dtype; the running sums over the vocabulary are float64.

Memory: nothing shaped ``[N, L, T, vocab]`` exists anywhere. Per batch the residuals of all
layers stay on the model's device and are decoded in chunks of tokens × vocabulary entries
holding at most ``max_logit_elements`` logits (an online, max-shifted softmax over vocabulary
chunks, so a vocabulary too large for one chunk is streamed, never truncated). Only per-token
scalars reach the host.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..core.errors import InstrumentationError
from .adapters import ArchitectureAdapter, adapter_for, instrument
from .checkpoints import LoadedModel
from .forward import PassStats, run_pass
from .gain import LayerGains

#: Default bound on the logits held at once while decoding (fp32: 4 bytes each): on a CPU a
#: chunk that stays in cache is fastest (measured in docs/performance.md), a GPU wants large
#: chunks. Used when ``max_logit_elements`` is None.
DEFAULT_MAX_LOGIT_ELEMENTS_CPU = 1 << 20
DEFAULT_MAX_LOGIT_ELEMENTS_GPU = 1 << 26


def default_max_logit_elements(device: torch.device) -> int:
    """:data:`DEFAULT_MAX_LOGIT_ELEMENTS_CPU` on a CPU, ``..._GPU`` on any accelerator."""
    return (
        DEFAULT_MAX_LOGIT_ELEMENTS_CPU if device.type == "cpu" else DEFAULT_MAX_LOGIT_ELEMENTS_GPU
    )


#: KL(model logits || lens of the last block) allowed by the self-check, per model dtype.
SELF_CHECK_KL_TOLERANCE = 1e-6
#: Half-precision models compute their own logits in bf16/fp16, so their reference is rounded.
SELF_CHECK_KL_TOLERANCE_HALF = 1e-2

_ADAPTER_FIX = (
    "Add the path to the adapter entry of this family in avalanche_kedro/measure/adapters.py "
    "(final_norm_path, and output_projection_path where the model projects before the "
    "unembedding) and run pytest tests/measure/test_lens.py."
)


def _walk(root: nn.Module, path: str) -> tuple[bool, object]:
    """``(found, value)`` of a dotted attribute path; a None attribute is found as None."""
    value: object = root
    for name in path.split("."):
        if not hasattr(value, name):
            return False, None
        value = getattr(value, name)
    return True, value


def _logit_transform(config) -> Callable[[torch.Tensor], torch.Tensor]:
    """The model's own map from the head's output to its logits (see the module docstring)."""
    cap = getattr(config, "final_logit_softcapping", None)
    scaling = getattr(config, "logits_scaling", None)
    if cap is not None:
        cap = float(cap)
        return lambda z: torch.tanh(z / cap) * cap
    if scaling is not None and float(scaling) != 1.0:
        scaling = float(scaling)
        return lambda z: z / scaling
    return lambda z: z


class LensDecoder:
    """Final norm + projection + unembedding of one model, in fp32 (module docstring)."""

    def __init__(self, model: nn.Module, adapter: ArchitectureAdapter | None = None) -> None:
        adapter = adapter or adapter_for(model.config.model_type)
        name = type(model).__name__
        if not adapter.final_norm_path:
            raise InstrumentationError(
                f"The '{adapter.family}' adapter has no final_norm_path, so the logit lens "
                f"cannot decode the residual stream of {name}.",
                _ADAPTER_FIX,
            )
        found, norm = _walk(model, adapter.final_norm_path)
        if not found or not (norm is None or isinstance(norm, nn.Module)):
            raise InstrumentationError(
                f"{name} has no final norm at '{adapter.final_norm_path}' (the "
                f"'{adapter.family}' adapter's final_norm_path).",
                _ADAPTER_FIX,
            )
        projection = None
        if adapter.output_projection_path:
            found, projection = _walk(model, adapter.output_projection_path)
            if not found:
                raise InstrumentationError(
                    f"{name} has no output projection at '{adapter.output_projection_path}'.",
                    _ADAPTER_FIX,
                )
        head = model.get_output_embeddings()
        weight = getattr(head, "weight", None)
        bias = getattr(head, "bias", None)
        if weight is None and getattr(model.config, "tie_word_embeddings", False):
            # a head tied to the input embeddings decodes with the embedding matrix itself
            weight = getattr(model.get_input_embeddings(), "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() != 2:
            raise InstrumentationError(
                f"{name} has no unembedding matrix: get_output_embeddings() gave "
                f"{type(head).__name__}.",
                "The logit lens needs the LM head's [vocab, d] weight (or tied input "
                "embeddings). " + _ADAPTER_FIX,
            )
        # fp32 copies of the small modules: their statistics are computed in fp32
        self.norm = None if norm is None else copy.deepcopy(norm).float().eval()
        self.projection = None if projection is None else copy.deepcopy(projection).float().eval()
        self.weight = weight
        self.bias = bias
        self.transform = _logit_transform(model.config)
        self.vocab_size = int(weight.shape[0])

    def hidden(self, residual: torch.Tensor) -> torch.Tensor:
        """``P(norm(h))`` in fp32, any leading shape."""
        x = residual.float()
        if self.norm is not None:
            x = self.norm(x)
        if self.projection is not None:
            x = self.projection(x)
        return x

    def logits(self, hidden: torch.Tensor, start: int = 0, stop: int | None = None):
        """fp32 logits of vocabulary entries ``[start, stop)`` for normed hidden states."""
        weight = self.weight[start:stop].float()
        z = hidden @ weight.T
        if self.bias is not None:
            z = z + self.bias[start:stop].float()
        return self.transform(z)


@dataclass
class LensStats:
    """Per (layer, token) lens statistics of one batch (torch tensors on the device)."""

    entropy: torch.Tensor  # [L, R] nats
    kl_to_final: torch.Tensor  # [L, R] nats, KL(p_final || p_l)
    p_next: torch.Tensor  # [L, R]
    rank_next: torch.Tensor  # [L, R] 1-based
    top1: torch.Tensor  # [L, R] token id
    topk_prob: torch.Tensor | None = None  # [L, R, k]
    topk_id: torch.Tensor | None = None  # [L, R, k]


def _chunk_sizes(n_layers: int, n_rows: int, vocab: int, budget: int) -> tuple[int, int]:
    """(rows, vocab entries) per chunk so that layers × rows × vocab ≤ ``budget`` logits."""
    budget = max(int(budget), 1)
    rows = budget // max(n_layers * vocab, 1)
    if rows >= min(n_rows, 16):
        return max(1, min(n_rows, rows)), vocab
    rows = min(n_rows, 16)
    return rows, max(1, min(vocab, budget // (n_layers * rows)))


def decode_layers(
    decoder: LensDecoder,
    hidden: torch.Tensor,
    next_ids: torch.Tensor,
    max_logit_elements: int | None = None,
    top_k: int = 0,
) -> LensStats:
    """Lens statistics of normed hidden states ``hidden [L, R, d]`` (the last layer is final).

    The vocabulary is streamed in chunks (:func:`_decode_rows`); per (layer, row) the result
    is ``H = log Z - E_p[z]`` (nats), ``KL(p_f || p) = E_f[log p_f - log p]``,
    ``p_next = exp(z_next - log Z)``, ``rank_next = 1 + #{v : z_v > z_next}`` (ties favour
    the next token) and the top-1 (the first maximal id).
    """
    n_layers, n_rows, _ = hidden.shape
    if max_logit_elements is None:
        max_logit_elements = default_max_logit_elements(hidden.device)
    rows_per_chunk, vocab_per_chunk = _chunk_sizes(
        n_layers, n_rows, decoder.vocab_size, max_logit_elements
    )
    parts = [
        _decode_rows(decoder, hidden[:, r0 : r0 + rows_per_chunk],
                     next_ids[r0 : r0 + rows_per_chunk], vocab_per_chunk, top_k)
        for r0 in range(0, n_rows, rows_per_chunk)
    ]  # fmt: skip
    joined = {name: torch.cat([part[name] for part in parts], dim=1) for name in parts[0]}
    return LensStats(**joined)


def _decode_rows(
    decoder: LensDecoder, x: torch.Tensor, nxt: torch.Tensor, vocab_per_chunk: int, top_k: int
) -> dict[str, torch.Tensor]:
    """One chunk of rows ``x [L, R, d]``, streamed over vocabulary chunks (online softmax).

    Per (row, layer) it keeps the running max ``m`` and, with ``shift = z - m`` and
    ``e = exp(shift)``: ``s = Σ e``, ``a = Σ e · shift`` and, with the final layer's ``e_f``,
    ``c = Σ e_f · shift``; when ``m`` grows by ``Δ`` the old sums are rescaled by ``exp(-Δ)``
    and ``a``, ``c`` shifted by ``-Δ s`` (``-Δ s_f``). Then ``log Z = m + log s``,
    ``H = log s - a / s`` and ``KL = a_f / s_f - c / s_f + log s - log s_f`` (exactly 0 at
    the last layer; clamped at 0 against rounding elsewhere). Elementwise work is fp32 on the
    device (``m`` is an fp32 value, so the shift is exact); sums over chunks are float64.
    ``a`` and ``c`` of every layer come from one batched product ``shift @ eᵀ`` per row
    (its diagonal and its last column), which reads the chunk once instead of twice.
    """
    x = x.transpose(0, 1)  # [R, L, d]: each row's layers side by side for the batched product
    n_rows, n_layers, _ = x.shape
    vocab = decoder.vocab_size
    device, f64 = x.device, torch.float64
    shape = (n_rows, n_layers)
    m = torch.full(shape, -torch.inf, dtype=f64, device=device)
    s, a, c, z_next = (torch.zeros(shape, dtype=f64, device=device) for _ in range(4))
    best_id = torch.zeros(shape, dtype=torch.int64, device=device)
    above = torch.zeros(shape, dtype=torch.int64, device=device)
    run_vals = run_ids = None
    chunks = list(range(0, vocab, vocab_per_chunk))
    for v0 in chunks:
        v1 = min(vocab, v0 + vocab_per_chunk)
        z = decoder.logits(x, v0, v1)  # [R, L, Vc] fp32
        chunk_max, chunk_arg = z.max(dim=-1)
        chunk_max = chunk_max.double()
        best_id = torch.where(chunk_max > m, chunk_arg + v0, best_id)  # first maximal id
        inside = (nxt >= v0) & (nxt < v1)
        if bool(inside.any()):
            local = (nxt - v0).clamp(0, v1 - v0 - 1)[:, None, None].expand(-1, n_layers, 1)
            picked = z.gather(-1, local)[..., 0].double()
            z_next = torch.where(inside[:, None], picked, z_next)
        if len(chunks) == 1:
            above = (z > z_next.to(z.dtype)[..., None]).sum(-1)
        if top_k:
            vals, ids = z.topk(min(top_k, v1 - v0), dim=-1)
            vals, ids = vals.double(), ids + v0
            if run_vals is not None:
                vals, ids = torch.cat([run_vals, vals], -1), torch.cat([run_ids, ids], -1)
            keep = vals.topk(min(top_k, vals.shape[-1]), dim=-1)
            run_vals, run_ids = keep.values, ids.gather(-1, keep.indices)
        m_new = torch.maximum(m, chunk_max)
        scale = torch.exp(m - m_new)  # 0 on the first chunk (m = -inf)
        delta = torch.where(torch.isfinite(m), m_new - m, torch.zeros_like(m))
        shift = z.sub_(m_new.to(z.dtype)[..., None])  # in place: z is not needed any more
        e = torch.exp(shift)
        dots = torch.bmm(shift, e.transpose(1, 2)).double()  # [R, L, L]: shift_l · e_j
        s_old, s = s, scale * s + e.sum(-1).double()
        a = scale * (a - delta * s_old) + dots.diagonal(dim1=1, dim2=2)
        c = scale[:, -1:] * (c - delta * s_old[:, -1:]) + dots[:, :, -1]
        m = m_new
    if len(chunks) > 1:
        for v0 in chunks:
            logits = decoder.logits(x, v0, min(vocab, v0 + vocab_per_chunk))
            above += (logits > z_next.to(logits.dtype)[..., None]).sum(-1)
    log_s = torch.log(s)
    kl = a[:, -1:] / s[:, -1:] - c / s[:, -1:] + log_s - log_s[:, -1:]
    result = {
        "entropy": (log_s - a / s).T,
        "kl_to_final": kl.clamp_min(0.0).T,
        "p_next": torch.exp(z_next - m - log_s).T,
        "rank_next": (above + 1).T,
        "top1": best_id.T,
    }
    if top_k:
        result["topk_prob"] = torch.exp(run_vals - (m + log_s)[..., None]).float().transpose(0, 1)
        result["topk_id"] = run_ids.transpose(0, 1)
    return result


@dataclass
class LensResult:
    """Per (window, layer, token) lens measurements on the host, ``[N, L, T]`` each.

    ``p_next`` is NaN and ``rank_next`` -1 at the last position (no next token in the
    window); ``agrees_final`` compares each layer's top-1 with the last layer's.
    """

    entropy: np.ndarray
    kl_to_final: np.ndarray
    p_next: np.ndarray
    rank_next: np.ndarray
    top1_id: np.ndarray
    agrees_final: np.ndarray
    stats: PassStats


def as_loaded(model, adapter: ArchitectureAdapter | None = None) -> LoadedModel:
    """``model`` as a :class:`LoadedModel` on its own device and dtype (as it is if it is one)."""
    if isinstance(model, LoadedModel):
        return model
    parameter = next(model.parameters())
    return LoadedModel(
        model=model,
        tokenizer=None,
        adapter=adapter or adapter_for(model.config.model_type),
        device=parameter.device,
        dtype=parameter.dtype,
        manifest={
            "model_id": getattr(model.config, "name_or_path", "") or type(model).__name__,
            "model_type": model.config.model_type,
        },
    )


def layer_predictions(
    model: nn.Module | LoadedModel,
    input_ids: np.ndarray,
    *,
    gains: LayerGains | None = None,
    adapter: ArchitectureAdapter | None = None,
    batch_size: int = 8,
    max_logit_elements: int | None = None,
    progress: bool = False,
) -> LensResult:
    """The logit lens of every layer at every token of ``input_ids [N, T]`` (windows).

    One forward pass per window (batched) with the gain hooks of ``gains`` installed (the
    plain model when None); the residuals are decoded on the model's device
    (:func:`decode_layers`) and only ``[N, L, T]`` scalars come back. ``model`` is a
    ``*ForCausalLM`` of a supported family or a :class:`LoadedModel`.
    """
    loaded = as_loaded(model, adapter)
    decoder = LensDecoder(loaded.model, loaded.adapter)
    ids = np.asarray(input_ids, dtype=np.int64)
    if ids.ndim != 2 or ids.shape[1] < 1:
        raise ValueError(f"input_ids must be [windows, tokens], got shape {ids.shape}")
    n_windows, seq_len = ids.shape
    n_layers = loaded.n_layers
    shape = (n_windows, n_layers, seq_len)
    result = {
        "entropy": np.empty(shape, np.float32),
        "kl_to_final": np.empty(shape, np.float32),
        "p_next": np.empty(shape, np.float32),
        "rank_next": np.empty(shape, np.int32),
        "top1_id": np.empty(shape, np.int32),
    }
    residuals: dict[int, torch.Tensor] = {}

    def decode(start: int, stop: int) -> None:
        batch = stop - start
        hidden = torch.stack([residuals[layer] for layer in range(n_layers)])  # [L, B, T, d]
        hidden = decoder.hidden(hidden).reshape(n_layers, batch * seq_len, -1)
        nxt = torch.zeros(batch, seq_len, dtype=torch.int64, device=loaded.device)
        nxt[:, :-1] = torch.as_tensor(ids[start:stop, 1:], device=loaded.device)
        stats = decode_layers(decoder, hidden, nxt.reshape(-1), max_logit_elements)
        residuals.clear()

        def host(values: torch.Tensor) -> np.ndarray:
            # [L, B*T] -> [B, L, T]; numpy casts to the result's dtype on assignment
            return values.reshape(n_layers, batch, seq_len).permute(1, 0, 2).cpu().numpy()

        result["entropy"][start:stop] = host(stats.entropy)
        result["kl_to_final"][start:stop] = host(stats.kl_to_final)
        result["p_next"][start:stop] = host(stats.p_next)
        result["rank_next"][start:stop] = host(stats.rank_next)
        result["top1_id"][start:stop] = host(stats.top1)

    pass_stats = run_pass(
        loaded,
        ids,
        batch_size=batch_size,
        gains=gains,
        on_residual=lambda layer, h: residuals.__setitem__(layer, h),
        on_batch_end=decode,
        progress=progress,
        description="logit lens",
    )
    result["p_next"][:, :, -1] = np.nan
    result["rank_next"][:, :, -1] = -1
    agrees = result["top1_id"] == result["top1_id"][:, -1:, :]
    return LensResult(agrees_final=agrees, stats=pass_stats, **result)


def lens_self_check(
    model: nn.Module | LoadedModel,
    input_ids: np.ndarray,
    tolerance: float | None = None,
    adapter: ArchitectureAdapter | None = None,
) -> dict:
    """The lens of the last block must reproduce the model's own logits (seeds' KL self-test).

    Computes ``max KL(p_model || p_lens)`` over every token of ``input_ids`` (float64 from the
    fp32 logits) and raises :class:`InstrumentationError` above ``tolerance``
    (:data:`SELF_CHECK_KL_TOLERANCE` for fp32 models, :data:`SELF_CHECK_KL_TOLERANCE_HALF`
    for bf16/fp16 ones, whose own logits are rounded to half precision).
    """
    loaded = as_loaded(model, adapter)
    decoder = LensDecoder(loaded.model, loaded.adapter)
    half = loaded.dtype in (torch.float16, torch.bfloat16)
    if tolerance is None:
        tolerance = SELF_CHECK_KL_TOLERANCE_HALF if half else SELF_CHECK_KL_TOLERANCE
    batch = torch.as_tensor(np.asarray(input_ids), dtype=torch.long, device=loaded.device)
    captured: dict[int, torch.Tensor] = {}
    last = loaded.n_layers - 1

    def keep_last(layer: int, residual: torch.Tensor) -> None:
        if layer == last:
            captured[layer] = residual

    with torch.inference_mode():
        with instrument(loaded.model, loaded.adapter, on_residual=keep_last):
            own = loaded.model(input_ids=batch, use_cache=False).logits.double()
        lens = decoder.logits(decoder.hidden(captured[last])).double()
    if own.shape[-1] != lens.shape[-1]:
        raise InstrumentationError(
            f"The lens decodes {lens.shape[-1]} vocabulary entries but the model's logits have "
            f"{own.shape[-1]}.",
            _ADAPTER_FIX,
        )
    log_p = torch.log_softmax(own, -1)
    kl = (log_p.exp() * (log_p - torch.log_softmax(lens, -1))).sum(-1)
    worst = float(kl.max().item())
    report = {
        "lens_self_check_max_kl": worst,
        "lens_self_check_tolerance": float(tolerance),
        "lens_self_check_tokens": int(batch.numel()),
        "lens_self_check_dtype": str(loaded.dtype).replace("torch.", ""),
        "lens_vocab_size": decoder.vocab_size,
    }
    if not worst <= tolerance:
        raise InstrumentationError(
            f"The logit lens of the last block does not reproduce the logits of model "
            f"'{loaded.manifest.get('model_id')}' ({loaded.manifest.get('model_type')}): "
            f"max KL {worst:.3g} nats > {tolerance:g}.",
            "The final norm, output projection or logit transform the lens applies differs "
            "from the model's own. " + _ADAPTER_FIX,
        )
    return report
