"""A GPT-2 language model, small enough to read in one sitting.

The architecture is GPT-2's, unchanged: token and learned position embeddings, a stack of
pre-LayerNorm transformer blocks (causal self-attention, then a 4x-wide GELU MLP), a final
LayerNorm, and an output head that shares its weight with the token embedding. Parameter names
follow GPT-2's (and nanoGPT's) so that their checkpoints can be imported by renaming nothing.

What is added on top is inference machinery: a key/value cache, so that generating one more
token costs one position of work instead of a pass over the whole context.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from .config import GPTConfig
from .decoding import KVCache
from .generation import generate_ids


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's own cannot drop only the bias)."""

    def __init__(self, ndim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        # One matmul makes queries, keys and values for all heads at once.
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.size()
        hd = C // self.n_head
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, hd).transpose(1, 2)  # (B, nh, T, hd)
        k = k.view(B, T, self.n_head, hd).transpose(1, 2)
        v = v.view(B, T, self.n_head, hd).transpose(1, 2)
        dropout = self.attn_dropout if self.training else 0.0
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            start = cache.length
            end = start + T
            cache.k[layer, :, :, start:end] = k
            cache.v[layer, :, :, start:end] = v
            k_all = cache.k[layer, :, :, :end]
            v_all = cache.v[layer, :, :, :end]
            if T == 1:
                # A single new query may look at every cached position: no mask needed.
                y = F.scaled_dot_product_attention(q, k_all, v_all)
            elif start == 0:
                y = F.scaled_dot_product_attention(q, k_all, v_all, is_causal=True)
            else:
                # Several new queries after a cached prefix: query i sees keys 0..start+i.
                mask = torch.ones(T, end, dtype=torch.bool, device=x.device).tril(diagonal=start)
                y = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


_GELU_K0 = 2.0 * math.sqrt(2.0 / math.pi)
_GELU_K1 = _GELU_K0 * 0.044715


class _TanhGELUFunction(torch.autograd.Function):
    """GPT-2's tanh GELU, 0.5 x (1 + tanh(z)) with z = sqrt(2/pi) (x + 0.044715 x^3), computed
    as x * sigmoid(2 z): the same function (0.5 (1 + tanh z) == sigmoid(2 z)), but this CPU build
    of torch evaluates tanh about 4x slower than sigmoid, and F.gelu(approximate="tanh") cost
    ~17% of a small model's training step. Each elementwise op is a pass over memory and each
    new tensor a fresh allocation, so the passes are fused where torch allows (addcmul) and the
    rest run in place: forward and backward together take ~40% less time than plain ops."""

    @staticmethod
    def forward(ctx, x):
        s = torch.addcmul(_gelu_k0(x), x, x, value=_GELU_K1).mul_(x).sigmoid_()  # sigmoid(2z)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        # d/dx [x s(u)] = s + x s (1 - s) du/dx,  u = K0 x + K1 x^3,  du/dx = K0 + 3 K1 x^2
        t = torch.addcmul(_gelu_k0(x), x, x, value=3.0 * _GELU_K1).mul_(x).mul_(s)  # x s u'
        t.addcmul_(t, s, value=-1.0).add_(s)  # s + x s u' (1 - s)
        return t.mul_(grad)


def _gelu_k0(x: torch.Tensor) -> torch.Tensor:
    """K0 as a 0-d tensor of x's dtype, the `input` addcmul needs (a float would not do)."""
    k0 = _GELU_K0_TENSORS.get(x.dtype)
    if k0 is None:
        k0 = _GELU_K0_TENSORS[x.dtype] = torch.tensor(_GELU_K0, dtype=x.dtype)
    return k0


_GELU_K0_TENSORS: dict[torch.dtype, torch.Tensor] = {}


class TanhGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            return _TanhGELUFunction.apply(x)
        # A single fused kernel on GPUs, and what torch.compile fuses best everywhere.
        return F.gelu(x, approximate="tanh")


class MLP(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = TanhGELU()  # GPT-2 used the tanh approximation of GELU
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm block: normalise, transform, add back to the residual stream."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: reading a token in and predicting it out use the same vectors. It saves
        # vocab_size * n_embd parameters and helps small models generalise.
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        # GPT-2 scales the init of the projections that write into the residual stream by
        # 1/sqrt(2 * n_layer): each block adds two of them, and the sum must not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Parameter count. Position embeddings are left out by default, as GPT-2 counts; the
        token embedding is counted because it doubles as the output head."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        cache: KVCache | None = None,
        last_only: bool = False,
    ):
        """Logits for idx of shape (B, T), and the mean cross-entropy if targets are given.

        With a cache, idx holds the positions after the cached ones. last_only computes the head
        for the final position only: generation needs nothing else, and the head is a
        (n_embd x vocab) matmul per position.
        """
        B, T = idx.size()
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(
                f"sequence of length {start + T} exceeds block_size {self.config.block_size}"
            )
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.length = start + T
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=-1
            )
            return logits, loss
        if last_only:
            x = x[:, -1:, :]
        return self.lm_head(x), None

    def new_cache(self, batch_size: int = 1) -> KVCache:
        p = self.lm_head.weight
        return KVCache(self.config, batch_size, p.device, p.dtype)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        vocab_limit: int | None = None,
    ) -> torch.Tensor:
        """Extend idx (B, T) by max_new_tokens sampled tokens; returns (B, T + max_new_tokens).

        temperature 0 picks the likeliest token (greedy). Runs with a KV cache; past block_size
        the context is shortened as described in charchat.generation. Ids from vocab_limit
        up (a padded embedding's spare rows) are never sampled.
        """
        new = list(
            generate_ids(
                self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                generator=generator, vocab_limit=vocab_limit,
            )
        )
        if not new:
            return idx
        return torch.cat([idx, torch.stack(new, dim=1)], dim=1)

    @torch.no_grad()
    def generate_stream(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
        vocab_limit: int | None = None,
    ):
        """Like generate, for a batch of one, but yields each new token id (an int) as soon as
        it is sampled, so a caller can print it at once and stop whenever it likes."""
        if idx.size(0) != 1:
            raise ValueError("generate_stream takes a batch of one sequence; use generate")
        for tok in generate_ids(
            self, idx, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
            generator=generator, vocab_limit=vocab_limit,
        ):
            yield int(tok[0])
