import math

import pytest
import torch
from torch.nn import functional as F

from charchat.model import GPT, GPTConfig

from conftest import tiny_config, tiny_gpt


def test_logits_shape_and_loss():
    model = tiny_gpt(vocab_size=11, block_size=8)
    idx = torch.randint(0, 11, (3, 8), generator=torch.Generator().manual_seed(0))
    logits, loss = model(idx)
    assert logits.shape == (3, 8, 11) and loss is None
    targets = torch.roll(idx, -1, dims=1)
    logits2, loss = model(idx, targets)
    torch.testing.assert_close(logits2, logits)
    expected = F.cross_entropy(logits.reshape(-1, 11), targets.reshape(-1))
    torch.testing.assert_close(loss, expected)
    # -1 targets are ignored
    targets[:, :4] = -1
    _, loss = model(idx, targets)
    torch.testing.assert_close(loss, F.cross_entropy(logits[:, 4:].reshape(-1, 11),
                                                     targets[:, 4:].reshape(-1)))


def test_last_only_is_the_last_position():
    model = tiny_gpt()
    idx = torch.randint(0, 12, (2, 10), generator=torch.Generator().manual_seed(1))
    full, _ = model(idx)
    last, _ = model(idx, last_only=True)
    assert last.shape == (2, 1, 12)
    torch.testing.assert_close(last, full[:, -1:])


def test_context_longer_than_block_size_is_refused():
    model = tiny_gpt(block_size=8)
    model(torch.zeros(1, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="block_size 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_weight_tying():
    model = tiny_gpt()
    assert model.transformer.wte.weight is model.lm_head.weight
    names = [n for n, _ in model.named_parameters()]
    assert "lm_head.weight" not in names or "transformer.wte.weight" not in names
    # Training keeps them one tensor.
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    idx = torch.randint(0, 12, (2, 8), generator=torch.Generator().manual_seed(0))
    model.train()
    model(idx, idx)[1].backward()
    opt.step()
    assert model.transformer.wte.weight is model.lm_head.weight


def test_num_params():
    model = tiny_gpt(vocab_size=10, block_size=16, n_embd=16)
    total = sum(p.numel() for p in model.parameters())
    assert model.num_params(non_embedding=False) == total
    assert model.num_params() == total - 16 * 16


def test_init_statistics():
    n_layer, n_embd = 4, 256
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=512, block_size=64, n_layer=n_layer, n_head=4, n_embd=n_embd))
    proj_std = 0.02 / math.sqrt(2 * n_layer)
    seen_proj = 0
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert p.std().item() == pytest.approx(proj_std, rel=0.03), name
            seen_proj += 1
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert p.std().item() == pytest.approx(0.02, rel=0.03), name
            assert abs(p.mean().item()) < 0.001, name
        elif "ln" in name and name.endswith("weight"):
            assert torch.equal(p, torch.ones_like(p)), name
        elif name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        else:
            pytest.fail(f"unexpected parameter {name}")
    assert seen_proj == 2 * n_layer


def test_no_bias_variant():
    model = tiny_gpt(bias=False)
    assert not [n for n, _ in model.named_parameters() if n.endswith("bias")]
    logits, _ = model(torch.zeros(1, 4, dtype=torch.long))
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize(
    "field, value",
    [("vocab_size", 0), ("block_size", -1), ("n_layer", 1.5), ("n_head", True), ("n_embd", "32"),
     ("n_head", 3), ("dropout", 1.0), ("dropout", -0.1)],
)
def test_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        tiny_config(**{field: value})


def test_config_dict_round_trip():
    cfg = tiny_config(bias=False, dropout=0.25)
    assert GPTConfig.from_dict({**cfg.to_dict(), "unknown": 1}) == cfg


def test_cached_forward_equals_full_forward():
    model = tiny_gpt(n_layer=2, block_size=16, dtype=torch.float64)
    idx = torch.randint(0, 12, (2, 16), generator=torch.Generator().manual_seed(3))
    full, _ = model(idx)
    cache = model.new_cache(2)
    pieces = [model(idx[:, a:b], cache=cache)[0] for a, b in [(0, 5), (5, 6), (6, 11), (11, 16)]]
    assert cache.length == 16
    torch.testing.assert_close(torch.cat(pieces, dim=1), full)
    with pytest.raises(ValueError):
        model(idx[:, :1], cache=cache)


def test_dropout_only_in_training():
    model = tiny_gpt(dropout=0.5)
    idx = torch.randint(0, 12, (2, 8), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(idx)[0], model(idx)[0])
    model.train()
    assert not torch.allclose(model(idx)[0], model(idx)[0])


# ---------------------------------------------------------------------------------------------
# Equivalence with Hugging Face's GPT-2

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def gpt2_state_dict_to_charchat(hf_sd: dict) -> dict:
    """Hugging Face GPT2LMHeadModel weights in charchat's layout: the same names, but HF's
    Conv1D stores (in, out) matrices where nn.Linear stores (out, in), and HF keeps the causal
    mask as buffers that charchat does not have."""
    out = {}
    for key, value in hf_sd.items():
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue
        out[key] = value.t().contiguous() if key.endswith(CONV1D) else value.clone()
    out["lm_head.weight"] = hf_sd["transformer.wte.weight"].clone()
    return out


def test_logits_equal_huggingface_gpt2():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(
        vocab_size=50, n_positions=32, n_embd=32, n_layer=2, n_head=4,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        bos_token_id=None, eos_token_id=None,
    )
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(hf_config).eval()
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            else:
                p.normal_(0.0, 0.1)

    model = GPT(GPTConfig(vocab_size=50, block_size=32, n_layer=2, n_head=4, n_embd=32))
    model.load_state_dict(gpt2_state_dict_to_charchat(hf.state_dict()), strict=True)
    model.eval()
    assert model.transformer.wte.weight is model.lm_head.weight

    idx = torch.randint(0, 50, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = hf(idx).logits
        logits, _ = model(idx)
    assert expected.abs().max() > 1.0  # the comparison is not between near-zero numbers
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cpu_gelu_matches_torch_tanh_gelu(dtype):
    """The fused CPU GELU must be GPT-2's tanh GELU, forward and backward, in every dtype."""
    from charchat.model import TanhGELU

    torch.manual_seed(0)
    x0 = torch.randn(4, 7, 33, dtype=dtype) * 3  # tails too, where sigmoid saturates
    grad = torch.randn_like(x0)
    x, xr = x0.clone().requires_grad_(), x0.clone().requires_grad_()
    y, yr = TanhGELU()(x), F.gelu(xr, approximate="tanh")
    y.backward(grad)
    yr.backward(grad)
    tol = dict(atol=1e-12, rtol=1e-12) if dtype == torch.float64 else dict(atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y, yr, **tol)
    torch.testing.assert_close(x.grad, xr.grad, **tol)
    assert y.dtype == dtype and x.grad.dtype == dtype
    if dtype == torch.float64:
        assert torch.autograd.gradcheck(TanhGELU(), (x0[:1, :2].clone().requires_grad_(),))


def test_model_traces_under_torch_compile():
    """--compile must not break on charchat's own ops (an in-place op on a saved tensor once
    did). aot_eager traces forward and backward like inductor but needs no C++ compiler."""
    model = tiny_gpt()
    x = torch.randint(0, model.config.vocab_size, (2, model.config.block_size))
    torch._dynamo.reset()
    # Compiled first: an eager call beforehand was seen to hide the failure from dynamo.
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    _, loss = compiled(x, x)
    loss.backward()
    with torch.no_grad():
        _, eager_loss = model(x, x)
    torch.testing.assert_close(loss, eager_loss, atol=1e-5, rtol=1e-5)
    assert all(p.grad is not None for p in model.parameters())
