"""A lean one-token forward pass for generation.

Reading one new token through GPT.forward runs ~70 nn.Module calls and ~160 small tensor ops; on
a CPU that per-call overhead, not arithmetic, is most of the time a small model spends per
token. This module runs the same computation as GPT.forward for a single position, with:

- weights pre-transposed to (in, out) and contiguous: a 1-row matmul against that layout is the
  fastest BLAS path (measured ~20% faster than nn.Linear's (out, in) layout on 2 AVX2 cores);
- the attention scale 1/sqrt(head_dim) folded into the query weights, saving an op per layer;
- attention for one query as two batched matmuls and a softmax over the cached keys, instead of
  scaled_dot_product_attention, whose setup costs more than the work for a single query.

Optionally (quantize="int8", CPU only) the four matrices of each block are stored as int8 with a
scale per output channel and multiplied through torch's int8 weight-only kernel with bf16
activations. A token then reads a quarter of the bytes; on 2 AVX2 cores the 24 matrix-vector
products of a 6-layer, 384-wide model take ~0.7 ms instead of ~2.4 ms. It changes the numbers
slightly (benchmarks/bench_generate.py reports the effect on loss), so it is opt-in.

It shares the KVCache of GPT.forward, so a prompt is read (prefilled) by GPT.forward in one pass
and each following token by DecodeStep. The two agree to float rounding (tests compare them).
The transposed copies cost as much memory as the weights (a quarter with int8). They are made
per generation call, or kept between calls by a DecodeWeightsCache (a chat session holds one).
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from .model import GPT, KVCache


class DecodeWeights:
    """The weights DecodeStep reads, laid out for one-row products (see the module docstring).

    Copies, not views: after the model's weights change, these are stale (DecodeWeightsCache
    says when they can be reused)."""

    def __init__(self, model: GPT, int8: bool) -> None:
        cfg = model.config
        C = cfg.n_embd
        scale = 1.0 / math.sqrt(cfg.n_embd // cfg.n_head)
        with torch.no_grad():
            tr = model.transformer
            self.wte = tr.wte.weight.detach()
            self.wpe = tr.wpe.weight.detach()
            self.head_t = self.wte.t().contiguous()  # tied output head, (C, vocab)
            self.ln_f = (tr.ln_f.weight.detach(), _bias(tr.ln_f))
            self.layers = []
            for block in tr.h:
                w_qkv = block.attn.c_attn.weight.detach().t().contiguous()  # (C, 3C)
                w_qkv[:, :C] *= scale
                b_qkv = _bias(block.attn.c_attn)
                if b_qkv is not None:
                    b_qkv = b_qkv.clone()
                    b_qkv[:C] *= scale
                mats = [w_qkv, block.attn.c_proj.weight.detach().t().contiguous(),
                        block.mlp.c_fc.weight.detach().t().contiguous(),
                        block.mlp.c_proj.weight.detach().t().contiguous()]
                if int8:
                    mats = [_Int8Matrix(m) for m in mats]
                self.layers.append((
                    block.ln_1.weight.detach(), _bias(block.ln_1),
                    mats[0], b_qkv,
                    mats[1], _bias(block.attn.c_proj),
                    block.ln_2.weight.detach(), _bias(block.ln_2),
                    mats[2], _bias(block.mlp.c_fc),
                    mats[3], _bias(block.mlp.c_proj),
                ))


class DecodeWeightsCache:
    """Keeps a model's DecodeWeights between generation calls, for callers that generate again
    and again from a model that does not change, such as a chat session.

    Preparing them (transposes, and int8 rounding) costs ~15 ms, or ~33 ms with int8, for a
    6-layer, 384-wide model: as much as ten tokens, at the start of every reply. Reuse needs the
    same parameter tensors with the same version counters; torch bumps a counter on most in-place
    writes, but not all (fused AdamW steps and writes through .data leave it as it was), so a
    holder whose model's weights may change must call clear() after changing them. Plain
    generation calls (GPT.generate, generate_ids without a cache) always prepare afresh.
    """

    def __init__(self) -> None:
        self._kept: dict[bool, tuple[tuple, DecodeWeights]] = {}

    def get(self, model: GPT, int8: bool) -> DecodeWeights:
        key = (id(model),) + tuple(
            (p.data_ptr(), p._version, p.dtype, p.device) for p in model.parameters())
        hit = self._kept.get(int8)
        if hit is None or hit[0] != key:
            hit = self._kept[int8] = (key, DecodeWeights(model, int8))
        return hit[1]

    def clear(self) -> None:
        self._kept.clear()


class DecodeStep:
    def __init__(self, model: GPT, cache: KVCache, quantize: str | None = None,
                 weights: DecodeWeightsCache | None = None) -> None:
        cfg = model.config
        self.cache = cache
        if quantize not in (None, "int8"):
            raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
        self.int8 = quantize == "int8" and int8_available(model.lm_head.weight.device)
        self.config = cfg
        self.n_head = cfg.n_head
        self.head_dim = cfg.n_embd // cfg.n_head
        w = weights.get(model, self.int8) if weights is not None else DecodeWeights(model, self.int8)
        self.wte, self.wpe, self.head_t, self.ln_f, self.layers = (
            w.wte, w.wpe, w.head_t, w.ln_f, w.layers)
        # The cache as (2, B * n_head, block_size, head_dim) per layer, keys then values: one
        # copy writes both, and their (B * n_head, ...) halves are 3-d views bmm takes as is.
        B = cache.kv.size(2)
        bs, hd = cfg.block_size, self.head_dim
        self.kv_views = [cache.kv[i].view(2, B * cfg.n_head, bs, hd) for i in range(cfg.n_layer)]
        self.k_views = [kv[0] for kv in self.kv_views]
        self.v_views = [kv[1] for kv in self.kv_views]

    @torch.no_grad()
    def __call__(self, tok: torch.Tensor) -> torch.Tensor:
        """Logits (B, vocab) for tokens tok (B,) at position cache.length; advances the cache."""
        cache = self.cache
        pos = cache.length
        if pos >= self.config.block_size:
            raise ValueError(f"cache is full ({pos} of block_size {self.config.block_size})")
        B = tok.size(0)
        nh, hd = self.n_head, self.head_dim
        C = nh * hd
        shape = (C,)
        end = pos + 1
        x = self.wte[tok] + self.wpe[pos]  # (B, C)
        if self.int8:
            return self._int8_layers(x, pos, B)
        for layer, kv, ck, cv in zip(self.layers, self.kv_views, self.k_views, self.v_views):
            l1w, l1b, wqkv, bqkv, wpr, bpr, l2w, l2b, wfc, bfc, wmp, bmp = layer
            h = torch.layer_norm(x, shape, l1w, l1b, 1e-5)
            qkv = torch.addmm(bqkv, h, wqkv) if bqkv is not None else torch.mm(h, wqkv)
            q = _store_kv(qkv, kv, pos, B, nh, hd)
            att = torch.bmm(q, ck[:, :end].transpose(1, 2))  # (B*nh, 1, T)
            y = torch.bmm(torch.softmax(att, dim=-1), cv[:, :end]).view(B, C)
            x = torch.addmm(x, y, wpr) if bpr is None else torch.addmm(x + bpr, y, wpr)
            h = torch.layer_norm(x, shape, l2w, l2b, 1e-5)
            h = torch.addmm(bfc, h, wfc) if bfc is not None else torch.mm(h, wfc)
            h = F.gelu(h, approximate="tanh")
            x = torch.addmm(x, h, wmp) if bmp is None else torch.addmm(x + bmp, h, wmp)
        cache.length = end
        x = F.layer_norm(x, shape, self.ln_f[0], self.ln_f[1], 1e-5)
        return torch.mm(x, self.head_t)


    def _int8_layers(self, x: torch.Tensor, pos: int, B: int) -> torch.Tensor:
        """The same computation with _Int8Matrix products (kept apart: the fp32 loop stays lean).

        The int8 kernel takes and returns bfloat16. Where no bias comes between, its output is
        used as is: the residual add promotes it to float32 exactly as .float() would, and the
        GELU of a bfloat16 tensor is computed in float32 and rounded once, as the next
        product's input would be anyway. That saves three dtype conversions per layer."""
        nh, hd = self.n_head, self.head_dim
        C = nh * hd
        shape = (C,)
        end = pos + 1
        bf16 = torch.bfloat16
        # x is this call's own tensor (made from the embeddings above), so the residual adds
        # may write into it.
        for layer, kv, ck, cv in zip(self.layers, self.kv_views, self.k_views, self.v_views):
            l1w, l1b, wqkv, bqkv, wpr, bpr, l2w, l2b, wfc, bfc, wmp, bmp = layer
            qkv = wqkv(torch.layer_norm(x, shape, l1w, l1b, 1e-5), bqkv)
            q = _store_kv(qkv, kv, pos, B, nh, hd)
            att = torch.bmm(q, ck[:, :end].transpose(1, 2))
            y = torch.bmm(torch.softmax(att, dim=-1), cv[:, :end]).view(B, C)
            x.add_(wpr.raw(y.to(bf16)) if bpr is None else wpr(y, bpr))
            h = torch.layer_norm(x, shape, l2w, l2b, 1e-5).to(bf16)
            if bfc is None:
                h = F.gelu(wfc.raw(h), approximate="tanh")
            else:
                h = F.gelu(wfc.raw(h).float() + bfc, approximate="tanh").to(bf16)
            y = wmp.raw(h)
            x.add_(y if bmp is None else y.float() + bmp)
        self.cache.length = end
        x = F.layer_norm(x, shape, self.ln_f[0], self.ln_f[1], 1e-5)
        return torch.mm(x, self.head_t)


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


def int8_available(device: torch.device) -> bool:
    return device.type == "cpu" and hasattr(torch.ops.aten, "_weight_int8pack_mm")


class _Int8Matrix:
    """A (in, out) float matrix stored as int8 (out, in) with one scale per output channel."""

    def __init__(self, w_t: torch.Tensor) -> None:
        w = w_t.t().float()  # (out, in)
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        self.q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8).contiguous()
        self.scale = scale.to(torch.bfloat16)

    def __call__(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        y = self.raw(x.to(torch.bfloat16)).float()
        return y if bias is None else y + bias

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """x (bfloat16) times the matrix, in bfloat16."""
        return torch.ops.aten._weight_int8pack_mm(x, self.q, self.scale)


def _bias(module) -> torch.Tensor | None:
    b = getattr(module, "bias", None)
    return None if b is None else b.detach()
