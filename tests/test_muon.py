import pytest
import torch

from charchat.muon import Muon, orthogonalise, orthogonalise_many


@pytest.mark.parametrize("shape", [(16, 16), (12, 40), (40, 12)])
def test_orthogonalise_makes_singular_values_near_one_in_the_gradients_directions(shape):
    g = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    o = orthogonalise(g)
    assert o.shape == g.shape and o.dtype == torch.float32
    sv = torch.linalg.svdvals(o)
    # The quintic overshoots on purpose: singular values land around [0.7, 1.2], not on 1.
    assert sv.min() > 0.5 and sv.max() < 1.3
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    exact = u @ vh  # the nearest semi-orthogonal matrix
    cos = (o * exact).sum() / (o.norm() * exact.norm())
    assert cos > 0.95


def _plain_iteration(g: torch.Tensor) -> torch.Tensor:
    """The textbook Newton-Schulz iteration on the matrix itself, in float64, started from
    x / ||(x x^T)^2||_F^(1/4) (the scale orthogonalise_many uses)."""
    from charchat.muon import NS_COEFFS

    a, b, c = NS_COEFFS
    g = g.double()
    x = g if g.size(0) <= g.size(1) else g.T
    x = x / torch.linalg.matrix_norm((x @ x.T) @ (x @ x.T)) ** 0.25
    for _ in range(5):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return (x if g.size(0) <= g.size(1) else x.T).float()


@pytest.mark.parametrize("shape", [(32, 128), (128, 32), (24, 200), (48, 48), (16, 23), (16, 24)])
def test_both_forms_equal_the_textbook_iteration(shape):
    """Wide matrices iterate on Gram matrices, near-square ones on x itself (the cheaper form
    for each, switching at n = 1.5 m); both must be the textbook map."""
    g = torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(orthogonalise(g.float()), _plain_iteration(g), atol=5e-5, rtol=0)


@pytest.mark.parametrize("steps", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("n", [10, 30])
def test_the_plain_and_gram_forms_agree_for_any_number_of_steps(steps, n):
    from charchat.muon import _iterate_gram, _iterate_plain

    gen = torch.Generator().manual_seed(steps)
    xs = [torch.randn(10, n, generator=gen) for _ in range(3)]
    factors = torch.tensor([1.0, 2.0, 0.5])
    for p, q in zip(_iterate_plain(xs, steps, factors), _iterate_gram(xs, steps, factors)):
        assert p.shape == (10, n)
        torch.testing.assert_close(p, q, atol=1e-4, rtol=0)
    assert not torch.equal(_iterate_plain(xs, steps, factors)[0], xs[0])


@pytest.mark.parametrize("spectrum", ["rank1", "flat", "decaying", "two_values"])
def test_the_starting_scale_never_puts_a_singular_value_above_one(spectrum):
    """The iteration diverges from singular values above ~1.3 (p(1.5) = 4.4): the bound
    sigma_max <= ||(x x^T)^2||_F^(1/4) must hold even where it is tight (rank 1, or all
    singular values equal)."""
    gen = torch.Generator().manual_seed(4)
    u, _ = torch.linalg.qr(torch.randn(32, 32, generator=gen))
    v, _ = torch.linalg.qr(torch.randn(96, 32, generator=gen))
    s = {"rank1": torch.eye(32)[0] * 7.0, "flat": torch.full((32,), 3.0),
         "decaying": torch.logspace(0, -4, 32), "two_values": torch.tensor([5.0] * 2 + [1e-3] * 30)}
    g = u @ torch.diag(s[spectrum]) @ v.T
    for m in (g, g.T, g * 1e-6, g * 1e6):
        out = torch.linalg.svdvals(orthogonalise(m).double())
        assert torch.isfinite(out).all() and out.max() <= 1.21


def test_a_zero_gradient_gives_a_zero_update():
    assert torch.equal(orthogonalise(torch.zeros(8, 24)), torch.zeros(8, 24))


def test_orthogonalise_ignores_the_gradients_scale():
    g = torch.randn(8, 20, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(orthogonalise(g), orthogonalise(g * 1e4), atol=1e-4)


def test_muon_takes_only_matrices():
    with pytest.raises(ValueError, match=r"matrices only; got a parameter of shape \(4,\)"):
        Muon([torch.nn.Parameter(torch.zeros(4))])
    with pytest.raises(ValueError, match="lr must be positive"):
        Muon([torch.nn.Parameter(torch.zeros(2, 2))], lr=0)


def test_a_step_moves_each_matrix_by_lr_times_an_orthogonal_update():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(6, 6))
    before = w.detach().clone()
    opt = Muon([w], lr=0.1, momentum=0.0, nesterov=False)
    w.grad = torch.randn(6, 6)
    opt.step()
    delta = (before - w.detach()) / 0.1
    # delta carries the rounding of w (~1e-7) divided by lr.
    assert torch.allclose(delta, orthogonalise(w.grad), atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orthogonalise_many_is_the_plain_iteration_for_each_matrix(dtype):
    gen = torch.Generator().manual_seed(3)
    # Mixed short sides (m = 12 and m = 8), square, near-square, wide and tall, as in a model:
    # batches of both forms.
    shapes = [(12, 12), (36, 12), (12, 48), (48, 12), (8, 20), (20, 8), (12, 12), (12, 17),
              (17, 12)]
    gs = [torch.randn(*s, generator=gen, dtype=dtype) for s in shapes]
    scales = [1.0, 3 ** 0.5, 1.0, 2.0, 1.0, 2.5 ** 0.5, 0.5, 1.5, 1.0]
    got = orthogonalise_many(gs, 5, scales)
    for g, s, o in zip(gs, scales, got):
        assert o.shape == g.shape and o.dtype == torch.float32
        torch.testing.assert_close(o, _plain_iteration(g) * s, atol=5e-5, rtol=0)
    assert orthogonalise_many([]) == []


def test_tall_matrices_take_larger_steps_and_decay_is_decoupled():
    torch.manual_seed(0)
    tall = torch.nn.Parameter(torch.ones(16, 4))
    opt = Muon([tall], lr=0.01, momentum=0.0, weight_decay=0.5)
    tall.grad = torch.randn(16, 4)
    opt.step()
    expected = torch.ones(16, 4) * (1 - 0.01 * 0.5) - 0.01 * 2.0 * orthogonalise(tall.grad)
    assert torch.allclose(tall.detach(), expected, atol=1e-6)


def test_row_blocks_are_orthogonalised_as_separate_matrices():
    torch.manual_seed(0)
    fused = torch.nn.Parameter(torch.zeros(12, 4))  # three stacked 4 x 4 maps
    other = torch.nn.Parameter(torch.zeros(8, 4))
    opt = Muon([{"params": [fused, other], "row_blocks": [3, 1]}], lr=0.1, momentum=0.0,
               nesterov=False)
    fused.grad, other.grad = torch.randn(12, 4), torch.randn(8, 4)
    # The first block dominates: orthogonalised as one matrix, it would take most of the step.
    fused.grad[:4] *= 100
    g_fused, g_other = fused.grad.clone(), other.grad.clone()
    opt.step()
    for rows, got in zip(g_fused.chunk(3), (-fused.detach() / 0.1).chunk(3)):
        torch.testing.assert_close(got, orthogonalise(rows), atol=1e-5, rtol=0)
        assert torch.linalg.svdvals(got).min() > 0.5  # every map gets a full-rank step
    # The other matrix is tall and whole: scaled by sqrt(8 / 4), as without blocks.
    torch.testing.assert_close(-other.detach() / 0.1, orthogonalise(g_other) * 2 ** 0.5,
                               atol=1e-5, rtol=0)
    assert opt.state_dict()["param_groups"][0]["row_blocks"] == [3, 1]
    whole = orthogonalise(g_fused)
    assert torch.linalg.svdvals(whole[4:]).min() < 0.2  # what the blocks avoid


def test_row_blocks_must_fit_the_parameters():
    w = torch.nn.Parameter(torch.zeros(10, 4))
    with pytest.raises(ValueError, match="3 blocks cannot split 10 rows evenly"):
        Muon([{"params": [w], "row_blocks": [3]}])
    with pytest.raises(ValueError, match="one entry per parameter: 2 for 1"):
        Muon([{"params": [w], "row_blocks": [1, 1]}])
    opt = Muon([w])
    assert opt.param_groups[0]["row_blocks"] == [1]
    # Groups added later are checked too, and a refused group is not kept.
    with pytest.raises(ValueError, match=r"matrices only; got a parameter of shape \(4,\)"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(4))]})
    with pytest.raises(ValueError, match="3 blocks cannot split 4 rows evenly"):
        opt.add_param_group({"params": torch.nn.Parameter(torch.zeros(4, 4)), "row_blocks": [3]})
    tall = torch.nn.Parameter(torch.zeros(6, 2))
    opt.add_param_group({"params": tall, "row_blocks": (3,)})
    assert len(opt.param_groups) == 2 and opt.param_groups[1]["row_blocks"] == [3]


def test_state_round_trip_gives_the_same_next_step():
    torch.manual_seed(0)
    grads = [torch.randn(5, 7) for _ in range(3)]

    def run(split):
        w = torch.nn.Parameter(torch.zeros(5, 7))
        opt = Muon([w], lr=0.05)
        for i, g in enumerate(grads):
            if i == split:
                sd = opt.state_dict()
                opt = Muon([w], lr=0.05)
                opt.load_state_dict(sd)
            w.grad = g.clone()
            opt.step()
        return w.detach()

    assert torch.equal(run(split=None), run(split=2))
    assert not torch.equal(run(split=None), run_fresh_momentum(grads))


def run_fresh_momentum(grads):
    """The same steps, but the momentum forgotten before the last one: a different result."""
    w = torch.nn.Parameter(torch.zeros(5, 7))
    opt = Muon([w], lr=0.05)
    for i, g in enumerate(grads):
        if i == 2:
            opt = Muon([w], lr=0.05)
        w.grad = g.clone()
        opt.step()
    return w.detach()
