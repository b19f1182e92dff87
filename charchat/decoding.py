"""A lean one-token forward pass for generation.

Reading one new token through GPT.forward runs ~70 nn.Module calls and ~160 small tensor ops; on
a CPU that per-call overhead, not arithmetic, is most of the time a small model spends per
token. This module runs the same computation as GPT.forward for a single position, with:

- weights pre-transposed to (in, out) and contiguous: a 1-row matmul against that layout is the
  fastest BLAS path (measured ~20% faster than nn.Linear's (out, in) layout on 2 AVX2 cores);
- the attention scale 1/sqrt(head_dim) folded into the query weights, saving an op per layer;
- attention for one query as two batched matmuls and a softmax over the cached keys, instead of
  scaled_dot_product_attention, whose setup costs more than the work for a single query.

Optionally (quantize="int8", CPU only, n_embd a multiple of 16) the four matrices of each block
are stored as int8 with a scale per output channel and multiplied through torch's int8
weight-only kernel with bf16 activations. A token then reads a quarter of the bytes; on 2 AVX2
cores the 24 matrix-vector products of a 6-layer, 384-wide model take ~0.7 ms instead of
~2.4 ms. It changes the numbers
slightly (benchmarks/bench_generate.py reports the effect on loss). Chat and `charchat sample`
use it by default on a CPU (SamplingSettings.quantize; --float turns it off); GPT.generate,
generate_ids and the trainer's samples use float weights unless asked.

On a CPU the step runs as one TorchScript graph, which spares each small op its trip through the
Python interpreter (~30% of the int8 step at 6 layers x 384; see _scripted).

It shares the KVCache of GPT.forward, so a prompt is read (prefilled) by GPT.forward in one pass
and each following token by DecodeStep. The two agree to float rounding (tests compare them).
The transposed copies cost as much memory as the weights (a quarter with int8). They are made
per generation call, or kept between calls by a DecodeWeightsCache (a chat session holds one).
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import List, Optional

import torch
from torch.nn import functional as F

from .config import GPTConfig

# What the decode step reads: a charchat.model.GPT (which imports this module, so the type is
# named here, not imported).
Model = torch.nn.Module


class KVCache:
    """Keys and values of every layer for the positions seen so far.

    Preallocated to block_size so that appending a position is an in-place copy, not a
    concatenation that reallocates the whole cache each token. Keys and values share one tensor,
    kv (layer, 2, batch, head, position, head_dim), so that the one-token decode step writes both
    with a single copy; k and v are views of it.
    """

    def __init__(self, config: GPTConfig, batch_size: int, device, dtype) -> None:
        head_dim = config.n_embd // config.n_head
        shape = (config.n_layer, 2, batch_size, config.n_head, config.block_size, head_dim)
        self.kv = torch.zeros(shape, device=device, dtype=dtype)
        self.k = self.kv[:, 0]  # (layer, batch, head, position, head_dim)
        self.v = self.kv[:, 1]
        self.length = 0  # number of positions filled


class DecodeWeights:
    """The weights DecodeStep reads, laid out for one-row products (see the module docstring).

    The matrices (and the head) are transposed copies, the embeddings, norm weights and most
    biases are views of the model's own tensors: after the model's weights change, a
    DecodeWeights mixes old and new values and must be rebuilt (DecodeWeightsCache says when
    it can be reused)."""

    def __init__(self, model: Model, int8: bool) -> None:
        cfg = model.config
        C = cfg.n_embd
        scale = 1.0 / math.sqrt(cfg.n_embd // cfg.n_head)
        self.int8 = int8
        with torch.no_grad():
            tr = model.transformer
            self.wte = tr.wte.weight.detach()
            self.wpe = tr.wpe.weight.detach()
            self.head_t = self.wte.t().contiguous()  # tied output head, (C, vocab)
            self.ln_f = [tr.ln_f.weight.detach(), _bias(tr.ln_f)]
            # Per block, in the order decode_position reads them: each matrix as (weight,
            # int8 scales or None, bias or None).
            self.layers: list[list[torch.Tensor | None]] = []
            for block in tr.h:
                w_qkv = block.attn.c_attn.weight.detach().t().contiguous()  # (C, 3C)
                w_qkv[:, :C] *= scale
                b_qkv = _bias(block.attn.c_attn)
                if b_qkv is not None:
                    b_qkv = b_qkv.clone()
                    b_qkv[:C] *= scale
                layer = [block.ln_1.weight.detach(), _bias(block.ln_1)]
                for w_t, b in ((w_qkv, b_qkv),
                               (block.attn.c_proj.weight.detach().t(), _bias(block.attn.c_proj))):
                    layer += [*_matrix(w_t, int8), b]
                layer += [block.ln_2.weight.detach(), _bias(block.ln_2)]
                for lin in (block.mlp.c_fc, block.mlp.c_proj):
                    layer += [*_matrix(lin.weight.detach().t(), int8), _bias(lin)]
                self.layers.append(layer)


def _matrix(w_t: torch.Tensor, int8: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A (in, out) matrix as decode_position multiplies it: (in, out) contiguous float with no
    scales, or int8 (out, in) with one bfloat16 scale per output channel."""
    if not int8:
        return w_t.contiguous(), None
    w = w_t.t().float()  # (out, in)
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8).contiguous()
    return q, scale.to(torch.bfloat16)


class DecodeWeightsCache:
    """Keeps a model's DecodeWeights between generation calls, for callers that generate again
    and again from a model that does not change, such as a chat session.

    Preparing them (transposes, and int8 rounding) costs ~15 ms, or ~33 ms with int8, for a
    6-layer, 384-wide model: as much as 15-30 tokens, at the start of every reply. Reuse needs the
    same parameter tensors with the same version counters; torch bumps a counter on most in-place
    writes, but not all (fused AdamW steps and writes through .data leave it as it was), so a
    holder whose model's weights may change must call clear() after changing them. Plain
    generation calls (GPT.generate, generate_ids without a cache) always prepare afresh.
    """

    def __init__(self) -> None:
        self._kept: dict[bool, tuple[tuple, DecodeWeights]] = {}

    def get(self, model: Model, int8: bool) -> DecodeWeights:
        key = (id(model),) + tuple(
            (p.data_ptr(), p._version, p.dtype, p.device) for p in model.parameters())
        hit = self._kept.get(int8)
        if hit is None or hit[0] != key:
            hit = self._kept[int8] = (key, DecodeWeights(model, int8))
        return hit[1]

    def clear(self) -> None:
        self._kept.clear()


class DecodeStep:
    def __init__(self, model: Model, cache: KVCache, quantize: str | None = None,
                 weights: DecodeWeightsCache | None = None) -> None:
        cfg = model.config
        self.cache = cache
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
        device = model.lm_head.weight.device
        self.int8 = quantize == "int8" and int8_available(device, cfg.n_embd)
        self.config = cfg
        self.n_head = cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        self.weights = (weights.get(model, self.int8) if weights is not None
                        else DecodeWeights(model, self.int8))
        # The cache as (2, B * n_head, block_size, head_dim) per layer, keys then values: one
        # copy writes both, and their (B * n_head, ...) halves are 3-d views bmm takes as is.
        B = cache.kv.size(2)
        bs, hd = cfg.block_size, self.head_dim
        self.kv_views = [cache.kv[i].view(2, B * cfg.n_head, bs, hd) for i in range(cfg.n_layer)]
        # On a CPU the whole step runs as one TorchScript graph (see _scripted); elsewhere, and
        # where scripting is unavailable, the same function runs as Python.
        self._run = (_scripted() or decode_position) if device.type == "cpu" else decode_position

    @torch.no_grad()
    def __call__(self, tok: torch.Tensor) -> torch.Tensor:
        """Logits (B, vocab) for tokens tok (B,) at position cache.length; advances the cache."""
        cache = self.cache
        pos = cache.length
        if pos >= self.config.block_size:
            raise ValueError(f"cache is full ({pos} of block_size {self.config.block_size})")
        w = self.weights
        args = (tok, pos, self.n_head, self.head_dim, w.int8, w.wte, w.wpe,
                w.ln_f[0], w.ln_f[1], w.head_t, w.layers, self.kv_views)
        try:
            logits = self._run(*args)
        except RuntimeError:
            if self._run is decode_position:
                raise
            # A graph that compiled but fails when run (a torch that changed under it): use the
            # Python function from now on. Retrying is safe: the step only writes the cache at
            # pos, and cache.length moves on below, after a step that succeeded.
            _SCRIPTED[:] = [None]
            self._run = decode_position
            logits = self._run(*args)
        cache.length = pos + 1
        return logits


def decode_position(tok: torch.Tensor, pos: int, nh: int, hd: int, int8: bool,
                    wte: torch.Tensor, wpe: torch.Tensor, lnf_w: torch.Tensor,
                    lnf_b: Optional[torch.Tensor], head_t: torch.Tensor,
                    layers: List[List[Optional[torch.Tensor]]],
                    kvs: List[torch.Tensor]) -> torch.Tensor:
    """GPT.forward for tokens tok (B,) at position pos, reading and extending the cache views
    kvs (one (2, B * nh, block, hd) per layer). Written for TorchScript as well as Python.

    With int8, activations enter each product as bfloat16 (the kernel's input) and come back
    as float32; the residual stream stays float32 throughout."""
    B = tok.size(0)
    C = nh * hd
    end = pos + 1
    act = torch.bfloat16 if int8 else wte.dtype
    x = wte[tok] + wpe[pos]  # (B, C)
    for i in range(len(layers)):
        L = layers[i]
        kv = kvs[i]
        h = torch.layer_norm(x, [C], L[0], L[1], 1e-5)
        qkv = _linear(h.to(act), L[2], L[3], L[4])
        q = _store_kv(qkv, kv, pos, B, nh, hd)
        att = torch.bmm(q, kv[0, :, :end].transpose(1, 2))  # (B*nh, 1, T)
        y = torch.bmm(torch.softmax(att, dim=-1), kv[1, :, :end]).view(B, C)
        x = x + _linear(y.to(act), L[5], L[6], L[7])
        h = torch.layer_norm(x, [C], L[8], L[9], 1e-5)
        h = F.gelu(_linear(h.to(act), L[10], L[11], L[12]), approximate="tanh")
        x = x + _linear(h.to(act), L[13], L[14], L[15])
    x = torch.layer_norm(x, [C], lnf_w, lnf_b, 1e-5)
    return torch.mm(x, head_t)


def _linear(x: torch.Tensor, w: Optional[torch.Tensor], scale: Optional[torch.Tensor],
            bias: Optional[torch.Tensor]) -> torch.Tensor:
    """x times w (see _matrix), plus bias, in float32."""
    assert w is not None
    if scale is None:
        return torch.mm(x, w) if bias is None else torch.addmm(bias, x, w)
    y = torch.ops.aten._weight_int8pack_mm(x, w, scale).float()
    return y if bias is None else y + bias


def _store_kv(qkv: torch.Tensor, kv: torch.Tensor, pos: int, B: int, nh: int,
              hd: int) -> torch.Tensor:
    """Write the new key and value (from qkv, (B, 3C)) at pos of kv, (2, B * nh, block, hd), in
    one copy; return the queries as (B * nh, 1, hd) for bmm."""
    if B == 1:
        t = qkv.view(3, nh, hd)
        kv[:, :, pos] = t[1:]
        return t[0].unsqueeze(1)
    t = qkv.view(B, 3, nh, hd).transpose(0, 1)  # (3, B, nh, hd)
    kv[:, :, pos] = t[1:].reshape(2, B * nh, hd)
    return t[0].reshape(B * nh, 1, hd)


_SCRIPTED: list = []
_SCRIPTING = threading.Lock()  # the TUI may start two generations at once, in two threads


def _scripted():
    """decode_position compiled by TorchScript, or None where that fails.

    Why: the step is ~140 small tensor ops, and from Python each costs ~3-5 us of interpreter and
    argument parsing on top of the work. TorchScript runs the same ops from C++: the int8 step
    of a 6-layer, 384-wide model took 0.98 ms instead of 1.42 ms, with the same results to float
    rounding (the graph may fuse an add into a matmul; tests compare the two paths). The
    graph is compiled once per process (~10 ms) and specialised on its first two calls (~40 ms
    more). torch.jit.script is deprecated in favour of torch.compile, which would need a C++
    compiler and tens of seconds here; if a torch without it comes, the Python path is used.
    Compiling goes through torch's process-wide registry, so one thread compiles, under a lock."""
    if _SCRIPTED:
        return _SCRIPTED[0]
    with _SCRIPTING:
        if not _SCRIPTED:
            fn = None
            try:
                with warnings.catch_warnings():
                    # Only the deprecation notice: a blanket "ignore" would also hide, for as
                    # long as this runs, every warning other threads raise.
                    warnings.filterwarnings("ignore", message=r".*torch\.jit\.\w+.*deprecated")
                    fn = torch.jit.script(decode_position)
            except Exception:  # noqa: BLE001 - any failure means: run the Python function
                fn = None
            _SCRIPTED.append(fn)
    return _SCRIPTED[0]


def int8_available(device: torch.device, n_embd: int | None = None) -> bool:
    """Whether int8 weights can be used on device for a model n_embd wide.

    torch's CPU int8 kernel (torch 2.13) handles inner dimensions that are multiples of 16 only:
    with others it returned wrong numbers (inner size 8, 24, 36, 40) or crashed the process
    (inner size 37 with 37 outputs), so such models keep float weights. Every int8 matrix of a
    block has an inner size of n_embd or 4 * n_embd."""
    if n_embd is not None and n_embd % 16:
        return False
    return device.type == "cpu" and hasattr(torch.ops.aten, "_weight_int8pack_mm")


def _bias(module) -> torch.Tensor | None:
    b = getattr(module, "bias", None)
    return None if b is None else b.detach()
