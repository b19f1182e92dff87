"""Muon: momentum SGD whose update for each weight matrix is orthogonalised first.

Why it is here: for the 2-D weights inside the transformer blocks, replacing the
momentum-smoothed gradient G by the nearest semi-orthogonal matrix (U V^T, from G = U S V^T)
gives every direction of the update the same size, so rare directions are not drowned by the
dominant ones. On charchat's CPU budgets it reaches a lower validation loss than AdamW in the
same wall-clock time, even though each step costs more (figures in benchmarks/README.md).
Embeddings, the tied output head and LayerNorm gains are not matrices of this kind and stay
with AdamW (see charchat.trainer).

U V^T is approximated with a few Newton-Schulz iterations of an odd quintic whose
coefficients (3.4445, -4.7750, 2.0315) were fitted by Keller Jordan to push every singular
value of a normalised matrix towards 1 quickly; they overshoot a little (values end up in
about [0.7, 1.2]), which training does not mind.

torch.optim.Muon (torch >= 2.9) casts to bfloat16 for the iterations. CPUs without native
bfloat16 arithmetic (most laptops, and the AVX2 machine charchat was first measured on) emulate
it: in the same minutes it took 14 times fewer steps than AdamW there. This implementation
iterates in float32, which cost a 4-layer, 128-wide model about 12 ms a step on 2 cores (20 ms
before the iteration on Gram matrices below, 14 ms before batching it across matrices); taking
square matrices back to the plain iteration then cut the orthogonalisation by another 10-18%.
The Gram form must stay in float32 even where bfloat16 is fast (an AVX-512 BF16 machine ran its
products 1.8x faster): rounding gives the Gram matrix slightly negative eigenvalues, which the
iteration amplifies (singular values up to 44 in a test, against at most 1.2 in float32).
"""

from __future__ import annotations

import torch

from .optimizer import Optimizer

# Quintic Newton-Schulz coefficients: x -> a x + b x^3 + c x^5 on the singular values.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def orthogonalise(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """An approximation of U V^T for a matrix g = U S V^T (orthogonalise_many for one)."""
    return orthogonalise_many([g], steps)[0]


def orthogonalise_many(
    gs: list[torch.Tensor], steps: int = 5, scales: list[float] | None = None
) -> list[torch.Tensor]:
    """orthogonalise(g) * scale for each g in gs, in float32.

    Each matrix is taken in its wide form x (m x n, m <= n) and scaled so that every singular
    value is at most 1 (by the bound from its Gram matrix, see _start). Each Newton-Schulz step
    multiplies x by a polynomial p(G) = a I + b G + c G^2 of its Gram matrix G = x x^T (m x m).
    Matrices of the same shape class iterate together as one (k, m, ...) batch: one batched
    product instead of k small ones, which keeps both cores busy where a single 128 x 128
    product does not. Two forms of the same iteration (same map, up to float rounding):

    - plain (_iterate_plain): x <- p(G) x, with G recomputed from x each step. Per matrix,
      2 s m^2 n + s m^3 multiply-adds for s steps.
    - Gram (_iterate_gram): all the p's commute, so the steps can run on m x m matrices alone,
      keeping the product Q of the p's and the Gram matrix of the current x (G' = p(G)^2 G),
      and multiplying the m x n matrix once at the end: 2 m^2 n + (4 s - 3) m^3.

    The plain form is the cheaper one below n = 1.5 m (square matrices: 15 against 19 m^3 for
    five steps; measured 10-18% less time for a 4-layer, 128-wide model's 24 matrices), the Gram
    form above it (128 x 512: 45 against 25).
    """
    scales = [1.0] * len(gs) if scales is None else scales
    wide_xs = []
    for g in gs:
        x = g.float()
        wide_xs.append(x if x.size(0) <= x.size(1) else x.T)
    out: list[torch.Tensor | None] = [None] * len(gs)
    # Batches: one per shape for the plain form, one per short side m for the Gram form.
    groups: dict[tuple[bool, int, int], list[int]] = {}
    for i, x in enumerate(wide_xs):
        m, n = x.shape
        plain = 2 * n < 3 * m
        groups.setdefault((plain, m, n if plain else 0), []).append(i)
    for (plain, _, _), idx in groups.items():
        xs = [wide_xs[i] for i in idx]
        factors = torch.tensor([scales[i] for i in idx], dtype=torch.float32,
                               device=xs[0].device)
        ys = (_iterate_plain if plain else _iterate_gram)(xs, steps, factors)
        for i, y in zip(idx, ys):
            out[i] = y if gs[i].size(0) <= gs[i].size(1) else y.T
    return out  # type: ignore[return-value]


def _start(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """From the Gram matrices G = x x^T (k, m, m; scaled in place): (G, G^2, inv_norm) of the
    x's scaled so that every singular value is at most 1, inv_norm being that scale.

    Scaled as tightly as the Gram matrices allow: first by ||x||_F (trace(G) = ||x||_F^2), then
    by the bound sigma_max^4 <= (sum sigma^8)^(1/2) = ||G^2||_F. The second is the tighter one
    (sigma_max / ||x||_F was 0.31-0.41 on a training run's updates, against 0.66-0.80 with it),
    so every singular value starts about twice as close to 1: that is worth about half a
    Newton-Schulz step, and G^2 is needed by the first step anyway.
    """
    inv_trace = (gram.diagonal(dim1=1, dim2=2).sum(-1) + 1e-14).reciprocal()
    gram.mul_(inv_trace[:, None, None])  # first ||x||_F: G^2 cannot overflow float32
    gram2 = torch.bmm(gram, gram)
    boost = (gram2.flatten(1).norm(dim=1).sqrt() + 1e-14).reciprocal()
    gram.mul_(boost[:, None, None])
    gram2.mul_(boost.square()[:, None, None])
    return gram, gram2, (inv_trace * boost).sqrt()


def _iterate_plain(xs: list[torch.Tensor], steps: int, factors: torch.Tensor) -> list[torch.Tensor]:
    """The Newton-Schulz steps on x itself, for wide matrices of one shape (see above)."""
    a, b, c = NS_COEFFS
    x = torch.stack(xs)
    gram, gram2, inv_norm = _start(torch.bmm(x, x.transpose(1, 2)))
    for k in range(steps):
        if k == 0:
            poly = gram.mul(b).add_(gram2, alpha=c)  # b G + c G^2, with G^2 at hand
            poly.diagonal(dim1=1, dim2=2).add_(a)
            poly.mul_(inv_norm[:, None, None])  # x's normalisation, folded in: one pass less
        else:
            gram = torch.bmm(x, x.transpose(1, 2))
            poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)
            poly.diagonal(dim1=1, dim2=2).add_(a)  # a I + b G + c G^2
        if k == steps - 1:
            poly.mul_(factors[:, None, None])  # and the caller's scale
        x = torch.bmm(poly, x)
    return list(x.unbind(0))


def _iterate_gram(xs: list[torch.Tensor], steps: int, factors: torch.Tensor) -> list[torch.Tensor]:
    """The Newton-Schulz steps on m x m matrices, for wide matrices with one short side m."""
    a, b, c = NS_COEFFS
    m = xs[0].size(0)
    gram = torch.empty(len(xs), m, m, dtype=torch.float32, device=xs[0].device)
    for j, x in enumerate(xs):
        torch.mm(x, x.T, out=gram[j])
    gram, gram2, inv_norm = _start(gram)
    q = None
    for k in range(steps):
        if gram2 is None:
            poly = torch.baddbmm(gram, gram, gram, beta=b, alpha=c)  # b G + c G^2
        else:
            poly = gram.mul(b).add_(gram2, alpha=c)  # the same, with G^2 at hand
            gram2 = None
        poly.diagonal(dim1=1, dim2=2).add_(a)  # a I + b G + c G^2
        q = poly if q is None else torch.bmm(poly, q)
        if k < steps - 1:
            gram = torch.bmm(poly, torch.bmm(poly, gram))
    # The normalisation of x and the caller's scale, folded into q: one pass less per matrix.
    q.mul_((inv_norm * factors)[:, None, None])
    return [q[j] @ x for j, x in enumerate(xs)]


class Muon(Optimizer):
    """Muon for 2-D parameters (nn.Linear weights).

    lr: the size of the orthogonalised step (scaled by sqrt(max(1, rows/cols)), so that tall
    matrices, whose updates have smaller entries, move as far per entry as square ones).
    momentum: the factor of the running average of gradients; nesterov: step along the
    look-ahead of that average. weight_decay: decoupled, p <- p (1 - lr * weight_decay).
    With nesterov, each p.grad is overwritten by its update (callers zero gradients after a
    step anyway), which saves a copy per matrix.

    A group may carry "row_blocks", one int per parameter: that parameter's rows are that many
    stacked matrices of equal height, each orthogonalised on its own. A fused query/key/value
    projection (3 * n_embd rows) is three linear maps; orthogonalised as one 384 x 128 matrix,
    a large step in the queries would shrink the keys' and values' share of the update. Taken
    apart, each map gets a full-rank step of its own (measured: 0.006 and 0.010 lower validation
    loss after 1,450 steps at 4L x 128; the step's cost did not change measurably, see
    benchmarks/README.md).
    """

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 weight_decay: float = 0.0, ns_steps: int = 5) -> None:
        if lr <= 0:
            raise ValueError(f"Muon lr must be positive, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Muon momentum must be in [0, 1), got {momentum}")
        if ns_steps < 1:
            raise ValueError(f"Muon ns_steps must be at least 1, got {ns_steps}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov,
                        weight_decay=weight_decay, ns_steps=ns_steps)
        super().__init__(params, defaults)

    def add_param_group(self, group: dict) -> None:
        # Checked here rather than in __init__, so that groups added later are checked too.
        params = group["params"]
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        blocks = list(group.get("row_blocks", [1] * len(params)))
        for p in params:
            if p.dim() != 2:
                raise ValueError(f"Muon takes matrices only; got a parameter of shape "
                                 f"{tuple(p.shape)} (give it to AdamW)")
        if len(blocks) != len(params):
            raise ValueError(f"Muon row_blocks needs one entry per parameter: "
                             f"{len(blocks)} for {len(params)}")
        for p, k in zip(params, blocks):
            if k < 1 or p.size(0) % k:
                raise ValueError(f"Muon row_blocks: {k} blocks cannot split "
                                 f"{p.size(0)} rows evenly")
        super().add_param_group({**group, "params": params, "row_blocks": blocks})

    def load_state_dict(self, state_dict: dict) -> None:
        # States saved before row blocks existed orthogonalised every matrix whole: they resume
        # as they were trained.
        groups = [g if "row_blocks" in g else {**g, "row_blocks": [1] * len(g["params"])}
                  for g in state_dict["param_groups"]]
        super().load_state_dict({**state_dict, "param_groups": groups})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
            chosen = [(p, k) for p, k in zip(group["params"], group["row_blocks"])
                      if p.grad is not None]
            if not chosen:
                continue
            params = [p for p, _ in chosen]
            grads = [p.grad for p in params]
            bufs = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                bufs.append(state["momentum_buffer"])
            # One call per operation across all matrices, not one small op per matrix.
            torch._foreach_lerp_(bufs, grads, 1.0 - mom)
            if group["nesterov"]:
                torch._foreach_lerp_(grads, bufs, mom)
                updates = grads
            else:
                updates = bufs
            if wd:
                torch._foreach_mul_(params, 1.0 - lr * wd)
            # Each block of rows is a matrix of its own (chunks are views: no copies).
            targets, pieces = [], []
            for (p, k), u in zip(chosen, updates):
                targets.extend(p.chunk(k, dim=0))
                pieces.extend(u.chunk(k, dim=0))
            # Tall matrices get smaller entries from the orthogonalisation: scale them up.
            scales = [max(1.0, u.size(0) / u.size(1)) ** 0.5 for u in pieces]
            ortho = orthogonalise_many(pieces, group["ns_steps"], scales)
            torch._foreach_add_(targets, [o.to(t.dtype) for o, t in zip(ortho, targets)],
                                alpha=-lr)
        return loss
