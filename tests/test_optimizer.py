import copy
import subprocess
import sys

import pytest
import torch

from charchat.adamw import AdamW
from charchat.model import GPT, GPTConfig
from charchat.muon import Muon


def model_and_batch(seed=0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=20, block_size=8, n_layer=2, n_head=2, n_embd=16, bias=True))
    x = torch.randint(0, 20, (4, 8), generator=torch.Generator().manual_seed(seed))
    return model, x


def groups_of(model):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    return [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]


def train(model, x, opt, steps, lrs=None):
    for i in range(steps):
        if lrs:
            for g in opt.param_groups:
                g["lr"] = lrs[i]
        _, loss = model(x, x)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("fused", [True, False])
def test_adamw_is_torchs_adamw_to_the_bit(fused):
    ours, x = model_and_batch()
    theirs, _ = model_and_batch()
    lrs = [1e-3, 3e-3, 2e-3, 1e-3, 5e-4, 1e-4]  # a schedule writes lr into the groups
    train(ours, x, AdamW(groups_of(ours), lr=1e-3, betas=(0.9, 0.95), fused=fused), 6, lrs)
    train(theirs, x, torch.optim.AdamW(groups_of(theirs), lr=1e-3, betas=(0.9, 0.95),
                                       fused=fused), 6, lrs)
    assert same_weights(ours, theirs)
    assert not same_weights(ours, model_and_batch()[0])  # it did train


@pytest.mark.parametrize("fused", [True, False])
def test_a_state_saved_by_torchs_adamw_resumes(fused):
    """Training states written before charchat had its own AdamW hold torch.optim's."""
    theirs, x = model_and_batch()
    torch_opt = torch.optim.AdamW(groups_of(theirs), lr=2e-3, fused=fused)
    train(theirs, x, torch_opt, 3)
    saved_weights = {k: v.clone() for k, v in theirs.state_dict().items()}
    saved_state = copy.deepcopy(torch_opt.state_dict())  # it holds the live buffers
    train(theirs, x, torch_opt, 3)  # the uninterrupted run

    resumed, _ = model_and_batch()
    resumed.load_state_dict(saved_weights)
    opt = AdamW(groups_of(resumed), lr=2e-3, fused=fused)
    opt.load_state_dict(saved_state)
    train(resumed, x, opt, 3)
    assert same_weights(resumed, theirs)


def block_matrices(model):
    return [p for n, p in model.named_parameters()
            if n.startswith("transformer.h.") and p.dim() == 2]


OPTIMIZERS = {
    "adamw": lambda model, lr: AdamW(groups_of(model), lr=lr, fused=True),
    "muon": lambda model, lr: Muon(block_matrices(model), lr=lr),
}


@pytest.mark.parametrize("kind", OPTIMIZERS)
def test_state_dict_round_trip_continues_the_same_run(kind):
    make = OPTIMIZERS[kind]
    a, x = model_and_batch()
    opt_a = make(a, 2e-3)
    train(a, x, opt_a, 2)
    saved_weights = {k: v.clone() for k, v in a.state_dict().items()}
    saved = copy.deepcopy(opt_a.state_dict())  # it holds the live buffers
    n_params = sum(len(g["params"]) for g in opt_a.param_groups)
    assert sorted(saved["state"]) == list(range(n_params))
    train(a, x, opt_a, 2)

    b, _ = model_and_batch(seed=5)
    b.load_state_dict(saved_weights)
    opt_b = make(b, 1.0)  # the saved lr replaces this one
    opt_b.load_state_dict(saved)
    assert opt_b.param_groups[0]["lr"] == 2e-3
    assert opt_b.param_groups[0]["weight_decay"] == opt_a.param_groups[0]["weight_decay"]
    train(b, x, opt_b, 2)
    assert same_weights(a, b)


def test_bad_parameters_and_states_are_refused():
    model, _ = model_and_batch()
    with pytest.raises(ValueError, match="empty parameter list"):
        AdamW([])
    p = next(model.parameters())
    with pytest.raises(ValueError, match="more than one parameter group"):
        AdamW([{"params": [p]}, {"params": [p]}])
    opt = AdamW(groups_of(model))
    with pytest.raises(ValueError, match="number of parameter groups"):
        opt.load_state_dict({"state": {}, "param_groups": [{"params": []}]})
    with pytest.raises(ValueError, match="differ in size"):
        opt.load_state_dict({"state": {}, "param_groups": [{"params": [0]}, {"params": [1]}]})


def test_zero_grad():
    model, x = model_and_batch()
    opt = AdamW(model.parameters())
    model(x, x)[1].backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_a_grad_scaler_unscales_and_skips_steps_with_infinite_gradients():
    """The trainer's fp16 path (CUDA) runs AdamW through torch.amp.GradScaler; the CPU
    scaler takes the same code path."""
    plain, x = model_and_batch()
    scaled, _ = model_and_batch()
    train(plain, x, AdamW(plain.parameters(), lr=1e-3), 1)
    opt = AdamW(scaled.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    _, loss = scaled(x, x)
    scaler.scale(loss).backward()
    scaler.unscale_(opt)
    scaler.step(opt)
    scaler.update()
    opt.zero_grad()
    for p, q in zip(plain.parameters(), scaled.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)

    before = [p.detach().clone() for p in scaled.parameters()]
    _, loss = scaled(x, x)
    scaler.scale(loss).backward()
    next(scaled.parameters()).grad[0, 0] = float("inf")
    scaler.step(opt)
    scaler.update()
    assert all(torch.equal(a, b) for a, b in zip(before, scaled.parameters()))
    assert scaler.get_scale() == 512.0


def test_training_never_imports_the_compiler():
    """torch.optim imports torch._dynamo (1.3 s) when an optimizer is built or stepped; a
    whole charchat training run, both optimizers, must not."""
    code = (
        "import sys, tempfile\n"
        "from charchat.corpus import corpus_from_text\n"
        "from charchat.trainer import Trainer, TrainConfig\n"
        "c = corpus_from_text('the quick brown fox jumps over the lazy dog. ' * 40)\n"
        "cfg = TrainConfig(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,\n"
        "                  max_steps=3, eval_interval=2, eval_tokens=256, device='cpu')\n"
        "r = Trainer(c, cfg, out_dir=tempfile.mkdtemp() + '/m').run()\n"
        "print(r.steps, 'torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[0] == "3" and out.stdout.split()[-1] == "False"
