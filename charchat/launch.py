"""`charchat train --gpus N`: start N training processes on this machine with torchrun's own
engine (torch.distributed's elastic launcher, in this process), and say in one line which one
failed, if one does.

The processes are `python -m charchat train --request JSON`, the run the user asked for with
its name chosen once; each joins the process group (charchat.distributed). Several machines: run torchrun on each (the
README has the commands); this module is the one-machine shortcut.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid

import torch


SHUTDOWN_S = 300


class LaunchError(Exception):
    """The processes could not be started, or one failed; the message is one line."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def check(n: int, device: str | None) -> str:
    """The device the N processes train on: each a CUDA GPU of this machine, or (with --device
    cpu) a share of its CPU cores. LaunchError says why N cannot be used."""
    req = (device or "auto").lower()
    if req == "cpu":
        return "cpu"
    if req not in ("auto", "cuda"):
        raise LaunchError(f"--gpus {n}: --device {device} cannot be used with it (each process "
                          "takes its own GPU; --device cpu trains in N CPU processes)", 2)
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have < n:
        raise LaunchError(f"--gpus {n}: this machine has {have} CUDA GPU"
                          f"{'' if have == 1 else 's'}" + (
                              " (--device cpu --gpus N tries the setup in N CPU processes)"
                              if have == 0 else ""), 2)
    return "cuda"


def worker_env(n: int, device: str) -> dict[str, str]:
    """Environment for the processes: on a CPU, the cores shared between them."""
    if device != "cpu":
        return {}
    threads = str(max(1, (os.cpu_count() or 1) // n))
    return {"CHARCHAT_THREADS": threads, "OMP_NUM_THREADS": threads}


def run(n: int, argv: list[str], device: str) -> int:
    """Start N processes of `charchat train argv` and wait for them; returns the exit status
    (0, or 130 after Ctrl-C with the best model kept). LaunchError names a process that died
    without saying why (killed by a signal)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    # The engine's own log lines (rendezvous, "shutting down workers") are not the user's
    # business; its failures come back as exceptions, worded below.
    for name in list(logging.root.manager.loggerDict):  # (each sets its own level)
        if name.startswith("torch.distributed.elastic"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.update(worker_env(n, device))
    # After Ctrl-C the processes finish their step, evaluate and save before they end: the
    # engine waits SHUTDOWN_S for that (its default, 30 s, could cut a large model's save).
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=n,
                          run_id=f"charchat-{uuid.uuid4().hex[:12]}", rdzv_backend="c10d",
                          rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.1,
                          shutdown_timeout=SHUTDOWN_S)
    try:
        elastic_launch(config, sys.executable)("-m", "charchat", "train", *argv)
    except ChildFailedError as e:
        return _failure(e)
    except SignalException:
        # Ctrl-C (or a SIGTERM) reached this process: the engine passed it on to the
        # processes, which stopped together at one step with the best model kept.
        return 130
    return 0


def _failure(e) -> int:
    """The exit status for a failed run; a process killed by a signal is named (the others
    said their own one line)."""
    failures = e.failures  # global rank -> ProcessFailure
    said = [f.exitcode for f in failures.values() if f.exitcode > 0]
    if said:
        # A process that exited with a status said why (130: stopped by the user); the engine
        # then stops the others with SIGTERM, which is no news.
        return 130 if set(said) == {130} else max(c for c in said if c != 130)
    rank, f = min(failures.items(), key=lambda kv: (kv[1].timestamp, kv[0]))
    raise LaunchError(f"training process rank {rank} (pid {f.pid}) was killed by "
                      f"{f.signal_name()}; the others stopped with it")
