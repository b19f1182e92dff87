"""Training across processes (charchat.distributed): two CPU processes over gloo, started here
with torch.multiprocessing, or with torchrun's engine through the command line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from charchat import distributed
from charchat.corpus import corpus_from_text
from charchat.trainer import Trainer

from conftest import pattern_text, tiny_train_config

PATTERN = pattern_text(30000)


# ---------------------------------------------------------------------------------------------
# In-process runs: one Trainer a process, a process group on a file store


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _trainer_worker(rank: int, world: int, port: int, folder: str, config: dict, out: str,
                    capture_grads: bool, stop_at: tuple[int, int] | None, resume: bool,
                    text: str) -> None:
    import torch.distributed as dist

    from charchat.device import pick_device

    torch.set_num_threads(1)
    d = distributed.Dist(rank, world, rank, pick_device("cpu"))
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                                world_size=world)
    events, grads, counted = [], {}, {"allreduce_calls": 0}

    class Capturing(Trainer):
        def _apply_gradients(self, params):
            if capture_grads and not grads:
                grads.update({n: p.grad.detach().clone().numpy()
                              for n, p in self.model.named_parameters()})
            if stop_at is not None and (rank, self.n.step + 1) == stop_at:
                self.cancel.set()  # as Ctrl-C would, on this rank alone
            return super()._apply_gradients(params)

        def _setup_together(self):
            super()._setup_together()
            if world > 1:  # count the gradient all-reduces (one a bucket each time)
                def hook(state, bucket):
                    counted["allreduce_calls"] += 1
                    return torch.distributed.algorithms.ddp_comm_hooks.default_hooks \
                        .allreduce_hook(None, bucket)

                import torch.distributed.algorithms.ddp_comm_hooks.default_hooks  # noqa: F401
                self.train_model.register_comm_hook(None, hook)

    corpus = corpus_from_text(text)
    t = Capturing(corpus, tiny_train_config(**config), out_dir=folder, on_event=events.append,
                  dist=d if world > 1 else None, resume=resume)
    result = t.run()
    calls = counted["allreduce_calls"]
    np.savez(f"{out}-{rank}.npz", **{f"grad/{k}": v for k, v in grads.items()})
    Path(f"{out}-{rank}.json").write_text(json.dumps({
        "stop": result.stop_reason, "steps": result.steps, "best": result.best_val_loss,
        "notes": t.notes, "allreduce_calls": calls,
        "events": [json.loads(e.to_json()) for e in events]}))
    del t  # (its model's gradient hooks hold DDP's reducer, which holds the process group)
    d.finish(clean=True)


def run_ranks(tmp_path, world: int, name: str, capture_grads=False, stop_at=None,
              resume=False, folder=None, text=PATTERN, **config):
    """Train with `world` processes (1: the same code, no process group) into tmp_path/folder
    (default: name); returns each rank's {"stop", "steps", "best", "notes", "events", "grads"}.
    stop_at=(rank, step): that rank alone is asked to stop once it has taken that step."""
    import torch.multiprocessing as mp

    out = tmp_path / f"{name}-out"
    mp.spawn(_trainer_worker, args=(world, free_port(), str(tmp_path / (folder or name)), config,
                                    str(out), capture_grads, stop_at, resume, text),
             nprocs=world, join=True)
    ranks = []
    for r in range(world):
        d = json.loads(Path(f"{out}-{r}.json").read_text())
        with np.load(f"{out}-{r}.npz") as z:
            d["grads"] = {k[5:]: z[k] for k in z.files}
        ranks.append(d)
    return ranks


def test_two_processes_have_the_gradients_of_one_on_the_doubled_batch(tmp_path):
    one = run_ranks(tmp_path, 1, "one", capture_grads=True, batch_size=8, max_steps=1)
    two = run_ranks(tmp_path, 2, "two", capture_grads=True, batch_size=4, max_steps=1)
    assert set(one[0]["grads"]) == set(two[0]["grads"])
    for k, g in one[0]["grads"].items():
        for r in range(2):
            np.testing.assert_allclose(two[r]["grads"][k], g, rtol=1e-4, atol=1e-7, err_msg=k)



def test_accumulation_all_reduces_once_a_step(tmp_path):
    one = run_ranks(tmp_path, 1, "one", capture_grads=True, batch_size=8, grad_accum=2,
                    max_steps=1)
    two = run_ranks(tmp_path, 2, "two", capture_grads=True, batch_size=4, grad_accum=2,
                    max_steps=3, eval_interval=3)
    for k, g in one[0]["grads"].items():
        np.testing.assert_allclose(two[1]["grads"][k], g, rtol=1e-4, atol=1e-7, err_msg=k)
    # A model this small fits one bucket: one all-reduce a step, none at the first micro-step.
    assert two[0]["allreduce_calls"] == two[1]["allreduce_calls"] == 3


def evals(rank_result) -> list[tuple[int, float]]:
    return [(e["step"], e["val_loss"]) for e in rank_result["events"] if e["kind"] == "eval"]


def steps(rank_result) -> list[tuple[int, float]]:
    return [(e["step"], e["train_loss"]) for e in rank_result["events"] if e["kind"] == "step"]


def test_a_30_step_run_matches_one_process_on_the_doubled_batch(tmp_path):
    one = run_ranks(tmp_path, 1, "one", batch_size=8, max_steps=30)
    two = run_ranks(tmp_path, 2, "two", batch_size=4, max_steps=30)
    assert two[1]["events"] == []  # rank 0 alone reports
    assert [s for s, _ in evals(two[0])] == [s for s, _ in evals(one[0])] == [10, 20, 30]
    for (_, a), (_, b) in zip(evals(one[0]) + steps(one[0]), evals(two[0]) + steps(two[0])):
        assert abs(a - b) < 1e-4
    assert two[0]["best"] == two[1]["best"] and abs(two[0]["best"] - one[0]["best"]) < 1e-4
    start = two[0]["events"][0]
    assert start["kind"] == "start" and "cpu x 2" in start["message"]
    meta = json.loads((tmp_path / "two" / "meta.json").read_text())
    assert meta["device"] == "cpu x 2"


def test_the_validation_loss_split_across_ranks_is_the_one_process_loss(tmp_path):
    # The same weights (an lr of 1e-12 leaves them as they were), scored by one process and by two.
    one = run_ranks(tmp_path, 1, "one", max_steps=1, eval_interval=1, lr=1e-12, min_lr=1e-13,
                    optimizer="adamw")
    two = run_ranks(tmp_path, 2, "two", max_steps=1, eval_interval=1, lr=1e-12, min_lr=1e-13,
                    optimizer="adamw", eval_tokens=16 * 7)  # 7 windows: 4 on rank 0, 3 on 1
    one7 = run_ranks(tmp_path, 1, "one7", max_steps=1, eval_interval=1, lr=1e-12, min_lr=1e-13,
                     optimizer="adamw", eval_tokens=16 * 7)
    assert abs(evals(two[0])[0][1] - evals(one7[0])[0][1]) < 1e-6
    assert evals(one[0])[0][1] != evals(one7[0])[0][1]  # (the window count matters)


def test_a_stop_asked_of_one_rank_ends_both_at_the_same_step(tmp_path):
    two = run_ranks(tmp_path, 2, "two", stop_at=(1, 13), max_steps=30)
    assert [r["stop"] for r in two] == ["cancelled", "cancelled"]
    assert [r["steps"] for r in two] == [13, 13]
    state = torch.load(tmp_path / "two" / "state.pt", weights_only=True)
    assert state["step"] == 13 and state["world"] == 2
    assert (tmp_path / "two" / "model.pt").exists()


def test_early_stopping_and_the_time_budget_end_both_ranks(tmp_path):
    from conftest import random_text

    noise = random_text(20000)
    two = run_ranks(tmp_path, 2, "es", text=noise, max_steps=400, eval_interval=2, patience=2,
                    lr=3e-2)
    assert [r["stop"] for r in two] == ["early_stopping"] * 2
    assert two[0]["steps"] == two[1]["steps"] < 400
    timed = run_ranks(tmp_path, 2, "tb", max_steps=None, minutes=0.03, eval_interval=5,
                      patience=10_000)  # (only the budget may end it, however fast)
    assert [r["stop"] for r in timed] == ["time_budget"] * 2
    assert timed[0]["steps"] == timed[1]["steps"] > 0


@pytest.mark.parametrize("dropout", [0.0, 0.1])  # (with dropout, every rank's own stream)
def test_resume_on_the_same_number_of_processes_goes_on_exactly(tmp_path, dropout):
    whole = run_ranks(tmp_path, 2, "whole", max_steps=30, dropout=dropout)
    cut = run_ranks(tmp_path, 2, "cut", stop_at=(0, 14), max_steps=30, dropout=dropout)
    assert cut[0]["steps"] == 14
    resumed = run_ranks(tmp_path, 2, "resumed", folder="cut", resume=True, max_steps=30,
                        dropout=dropout)
    assert resumed[0]["stop"] == "max_steps" and resumed[0]["notes"] == []
    assert evals(resumed[0])[-1] == pytest.approx(evals(whole[0])[-1], abs=1e-6)
    assert resumed[0]["best"] == pytest.approx(whole[0]["best"], abs=1e-6)


def test_resume_on_another_number_of_processes_says_so(tmp_path):
    run_ranks(tmp_path, 2, "two", stop_at=(0, 12), max_steps=30)
    one = run_ranks(tmp_path, 1, "one", folder="two", resume=True, max_steps=30)
    assert one[0]["stop"] == "max_steps" and one[0]["steps"] == 30
    assert any("last trained on 2 process(es), now on 1" in n for n in one[0]["notes"])


# ---------------------------------------------------------------------------------------------
# The command line: --gpus N (torchrun's engine in charchat), and torchrun itself

SMALL = ["--device", "cpu", "--n-layer", "1", "--n-head", "2", "--n-embd", "32",
         "--block-size", "32", "--batch-size", "4"]


def start(args: list[str], home: Path, cwd: Path, torchrun: bool = False) -> subprocess.Popen:
    """`charchat train ARGS` (or torchrun's own command) in its own session, as a terminal
    would run it; output collected."""
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            "-m", "charchat", "train"] if torchrun else [sys.executable, "-m", "charchat", "train"])
    env = {**os.environ, "CHARCHAT_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen(cmd + args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def wait_for_evals(folder: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            lines = (folder / "metrics.jsonl").read_text().splitlines()
        except OSError:
            lines = []
        if sum('"kind": "eval"' in line for line in lines) >= n:
            return
        time.sleep(0.2)
    raise AssertionError("no evaluations")


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "t.txt"
    path.write_text(PATTERN)
    return path


def test_gpus_2_on_the_cpu_trains_in_two_processes(tmp_path, corpus_file, charchat_home):
    proc = start([str(corpus_file), *SMALL, "--max-steps", "20", "--gpus", "2", "--name", "g"],
                 charchat_home, tmp_path)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert out.count("Done: reached --max-steps") == 1  # rank 0 alone speaks
    assert "cpu x 2" in out and err == ""
    meta = json.loads((charchat_home / "models" / "g" / "meta.json").read_text())
    assert meta["device"] == "cpu x 2" and meta["best_step"] == 20


def test_an_error_of_every_rank_is_said_once(tmp_path, corpus_file, charchat_home):
    (charchat_home / "models" / "taken").mkdir(parents=True)
    (charchat_home / "models" / "taken" / "model.pt").write_bytes(b"x")
    proc = start([str(corpus_file), *SMALL, "--gpus", "2", "--name", "taken"], charchat_home,
                 tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.splitlines() == [
        "charchat: error: a model named 'taken' already exists; use --resume taken to continue "
        "it, another --name, or 'charchat models rm' first"]


def test_gpus_without_a_gpu_is_refused(tmp_path, corpus_file, charchat_home):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = start([str(corpus_file), "--gpus", "2"], charchat_home, tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert err.strip() == ("charchat: error: --gpus 2: this machine has 0 CUDA GPUs (--device "
                           "cpu --gpus N tries the setup in N CPU processes)")


def test_ctrl_c_stops_both_ranks_at_one_step_with_the_best_model_kept(tmp_path, corpus_file,
                                                                      charchat_home):
    folder = charchat_home / "models" / "c"
    proc = start([str(corpus_file), *SMALL, "--max-steps", "100000", "--eval-interval", "5",
                  "--gpus", "2", "--name", "c"], charchat_home, tmp_path)
    wait_for_evals(folder, 2, proc)
    os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C: the launcher's whole group
    out, err = proc.communicate(timeout=60)
    # 130 from the launcher only if every rank stopped on its own with 130 (none was killed).
    assert proc.returncode == 130, err
    assert out.count("Stopping after this step") == 1 and err == ""  # rank 0 alone says it
    state = torch.load(folder / "state.pt", weights_only=True)
    end = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()][-1]
    assert end["kind"] == "end" and end["stop_reason"] == "cancelled"
    assert state["step"] == end["step"] and state["world"] == 2
    from charchat import store
    store.read_weights(folder / "model.pt")  # whole and loadable


def test_a_killed_rank_ends_the_other_with_one_line_naming_it(tmp_path, corpus_file,
                                                            charchat_home):
    folder = charchat_home / "models" / "k"
    proc = start([str(corpus_file), *SMALL, "--max-steps", "100000", "--eval-interval", "5",
                  "--name", "k"], charchat_home, tmp_path, torchrun=True)
    wait_for_evals(folder, 2, proc)
    workers = sorted(children(proc.pid))
    assert len(workers) == 2
    rank1 = next(p for p in workers
                 if b"RANK=1" in Path(f"/proc/{p}/environ").read_bytes().split(b"\0"))
    t0 = time.monotonic()
    os.kill(rank1, signal.SIGKILL)
    out, err = proc.communicate(timeout=90)
    assert time.monotonic() - t0 < 60
    assert proc.returncode != 0
    ours = [line for line in err.splitlines() if line.startswith("charchat: error:")]
    assert len(ours) == 1, err
    assert "process rank 1 of 2 is gone" in ours[0] and "the best model so far is in" in ours[0]
    from charchat import store
    store.read_weights(folder / "model.pt")


def test_the_app_follows_a_run_in_two_processes_and_stop_works(tmp_path, corpus_file):
    import threading

    from charchat import runs

    events, cancel = [], threading.Event()

    def on_event(ev):
        events.append(ev)
        if ev.kind == "eval" and ev.step >= 10:
            cancel.set()  # the training screen's Stop

    overrides = {"device": "cpu", "n_layer": 1, "n_head": 2, "n_embd": 32, "block_size": 32,
                 "batch_size": 4, "eval_interval": 5}
    req = runs.RunRequest(paths=[str(corpus_file)], max_steps=100000, overrides=overrides,
                          sample_every=1, gpus=2)
    result = runs.train_in_processes(req, on_event, cancel)
    assert result.stop_reason == "cancelled" and result.name == "t"
    assert events[0].kind == "start" and events[-1].kind == "end"
    assert events[0].start.config["batch_size"] == 4 and "cpu x 2" in events[0].message
    assert any(e.kind == "sample" and e.sample for e in events)  # the app shows samples
    assert result.best_val_loss == min(e.val_loss for e in events if e.kind == "eval")
    assert (result.path / "model.pt").exists() and result.steps >= 10


def test_the_app_gets_the_run_s_own_error(tmp_path):
    from charchat import runs
    from charchat.config import TrainingError

    req = runs.RunRequest(paths=[str(tmp_path / "missing.txt")], overrides={"device": "cpu"},
                          gpus=2)
    with pytest.raises(TrainingError) as e:
        runs.train_in_processes(req)
    assert str(e.value).endswith("missing.txt: no such file or folder")


def test_two_machines_rendezvous_through_torchrun(tmp_path, corpus_file, charchat_home):
    # Two torchrun agents with --nnodes=2 (one process each), as on two machines: here both
    # on 127.0.0.1, meeting at one c10d endpoint.
    endpoint = f"127.0.0.1:{free_port()}"
    env = {**os.environ, "CHARCHAT_HOME": str(charchat_home),
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
         "--rdzv-backend=c10d", "--rdzv-id=twomachines", f"--rdzv-endpoint={endpoint}",
         "-m", "charchat", "train", str(corpus_file), *SMALL, "--max-steps", "10", "--name",
         "nodes", "--quiet"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [n.communicate(timeout=180) for n in nodes]
    assert [n.returncode for n in nodes] == [0, 0], outs
    said = [out for out, _ in outs if "reached --max-steps" in out]
    assert len(said) == 1  # the machine with rank 0
    meta = json.loads((charchat_home / "models" / "nodes" / "meta.json").read_text())
    assert meta["device"] == "cpu x 2" and meta["best_step"] == 10


def test_sigterm_to_one_rank_stops_every_rank_at_one_step(tmp_path, corpus_file, charchat_home):
    folder = charchat_home / "models" / "term"
    proc = start([str(corpus_file), *SMALL, "--max-steps", "100000", "--eval-interval", "5",
                  "--name", "term"], charchat_home, tmp_path, torchrun=True)
    wait_for_evals(folder, 2, proc)
    rank1 = next(p for p in children(proc.pid)
                 if b"RANK=1" in Path(f"/proc/{p}/environ").read_bytes().split(b"\0"))
    os.kill(rank1, signal.SIGTERM)  # rank 1 alone is asked; rank 0 stops with it
    out, err = proc.communicate(timeout=90)
    assert "charchat: error" not in err, err
    end = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()][-1]
    assert end["kind"] == "end" and end["stop_reason"] == "cancelled"
    state = torch.load(folder / "state.pt", weights_only=True)
    assert state["step"] == end["step"]
    assert "Done: stopped by you" in out


def test_gpus_on_a_resume_keeps_the_run_s_device(tmp_path, corpus_file, charchat_home):
    # Trained on the CPU in 2 processes, resumed with --gpus 2 and no --device: the CPU again
    # (on this machine without a GPU, "auto" would refuse --gpus).
    first = start([str(corpus_file), *SMALL, "--max-steps", "10", "--gpus", "2", "--name", "r",
                   "--quiet"], charchat_home, tmp_path)
    assert first.wait(timeout=120) == 0
    again = start(["--resume", "r", "--max-steps", "5", "--gpus", "2", "--quiet"],
                  charchat_home, tmp_path)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "at step 15" in out
