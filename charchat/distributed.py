"""Training across processes, GPUs and machines: PyTorch's DistributedDataParallel, in processes
that torchrun starts (`torchrun --nproc_per_node=N -m charchat train ...`, or `charchat train
--gpus N`, which starts torchrun's engine itself).

One process a device; NCCL between CUDA devices, gloo on CPUs (and where NCCL is missing). What
the processes share, and who does what:

- Rank 0 alone holds the model folder: its lock, metrics.jsonl, the best model and the training
  state. The other ranks only read (a resumed run's state, the saved best model).
- Every rank builds the same model and the same optimizer; DistributedDataParallel averages the
  gradients, so every rank computes the same update (Muon's included) and rank 0's state is
  the whole run's.
- The data: every rank holds the same window sampler and draws the global batch (batch_size
  windows a process), then trains on its own slice of it. The windows of a step follow from
  (seed, rank, step) alone, so a resume on the same number of processes goes on exactly, and a
  run on N processes sees the windows a 1-process run with an N-times batch would.
- Every decision to stop is taken together: once a step, the ranks agree on whether any of them
  was asked to stop (Ctrl-C, SIGTERM) and on the clock (the slowest rank's), so the time
  budget, early stopping (on the validation loss every rank computes from the same sums) and
  the non-finite-loss guard end every rank at the same step.
- A failure on one rank (a bad file, a full disk) ends every rank at the same point, the error
  said once, by the lowest rank that had it. A rank that dies outright breaks the next
  collective operation on the others, which then stop with one line naming it.

A process group is started only when torchrun's environment asks for more than one process;
otherwise `Dist()` stands for the single process and every method is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import torch

from .device import DeviceInfo, pick_device

# The ranks' decisions (stop, clock, failures, sums) go through gloo on the CPU, also between
# GPUs: a rank that dies closes its sockets and the others' next decision fails at once, with
# no GPU synchronisation each step. How long a decision waits for the other ranks: rank 0 saves
# the best model and the training state while the others wait at the next one, so this bounds
# a save. The gradients go through NCCL, where the ranks are in step; its timeout ends a rank
# stuck there (a peer gone without closing its connection, on another machine).
TIMEOUT_S = float(os.environ.get("CHARCHAT_DIST_TIMEOUT", "300"))
NCCL_TIMEOUT_S = float(os.environ.get("CHARCHAT_NCCL_TIMEOUT", "60"))
_STORE_PREFIX = "charchat/"
_active: "Dist | None" = None


class PeerLost(RuntimeError):
    """Another process of the run is gone: its collective operations failed."""


class QuietExit(Exception):
    """This rank stops because another failed, whose message says why; nothing more to say."""

    def __init__(self, code: int = 1) -> None:
        super().__init__("")
        self.code = code


@dataclass
class Dist:
    """Where this process stands in the run: rank 0 of 1 unless torchrun started several."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: DeviceInfo | None = None  # this rank's device, once start() picked it
    control: object | None = field(default=None, repr=False)  # gloo group for decisions
    _lost: str | None = field(default=None, repr=False)
    gone: list[int] | None = field(default=None, repr=False)  # ranks found gone, if known
    failed_together: bool = field(default=False, repr=False)  # a together() block failed

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def on(self) -> bool:
        return self.world > 1

    # -- collective operations (no-ops for one process) ----------------------------------------
    def _tensor(self, values, dtype=torch.float64) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype)  # (decisions: on the CPU, through gloo)

    def _reduce(self, t: torch.Tensor, op, group=None) -> torch.Tensor:
        import torch.distributed as dist

        try:
            dist.all_reduce(t, op=op, group=self.control if group is None else group)
        except Exception as e:  # gloo: RuntimeError; NCCL: DistBackendError (a RuntimeError)
            raise self.lost(e) from None
        return t

    def agree(self, stop: bool, *clocks: float) -> tuple[bool, list[float]]:
        """Whether any rank wants to stop, and the largest of each clock over the ranks."""
        if not self.on:
            return stop, list(clocks)
        import torch.distributed as dist

        t = self._reduce(self._tensor([1.0 if stop else 0.0, *clocks]), dist.ReduceOp.MAX)
        return bool(t[0] > 0), t[1:].tolist()

    def sum(self, values: list[float]) -> list[float]:
        if not self.on:
            return list(values)
        import torch.distributed as dist

        return self._reduce(self._tensor(values), dist.ReduceOp.SUM).tolist()

    def mean_(self, t: torch.Tensor) -> torch.Tensor:
        """The mean over ranks of a tensor on this rank's device, in place (the default group:
        NCCL for CUDA tensors)."""
        if self.on:
            import torch.distributed as dist

            self._reduce(t, dist.ReduceOp.SUM, group=dist.group.WORLD)
            t /= self.world
        return t

    @contextlib.contextmanager
    def together(self):
        """Run the block on every rank, then fail together: if the block raised on any rank,
        every rank raises at the end of it. The lowest rank that failed re-raises its own
        error (the one message said); the others raise QuietExit."""
        if not self.on:
            yield
            return
        error: BaseException | None = None
        try:
            yield
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 (every rank must reach the sum)
            error = e
        flags = [0.0] * self.world
        flags[self.rank] = 1.0 if error is not None else 0.0
        failed = [r for r, f in enumerate(self.sum(flags)) if f > 0]
        if not failed:
            return
        self.failed_together = True  # (every rank knows: they may wait for each other to end)
        if error is not None and failed[0] == self.rank:
            raise error
        raise QuietExit(getattr(error, "code", 1) if error is not None else 1)

    # -- a rank that is gone --------------------------------------------------------------------
    def lost(self, error: BaseException) -> PeerLost:
        """The error for a collective that failed: which rank is gone, as far as can be told.

        Every rank that sees a collective fail marks itself alive in the rendezvous store and
        waits a moment for the others to do the same: a rank without its mark is the one gone.
        (When the store itself is gone, with the rank that held it, the message says so.)"""
        if self._lost is None:
            self._lost = self._find_lost(error)
        return PeerLost(self._lost)

    def _find_lost(self, error: BaseException) -> str:
        of = f"of {self.world}"
        try:
            import torch.distributed.distributed_c10d as c10d

            store = c10d._get_default_store()
            store.set(f"{_STORE_PREFIX}alive/{self.rank}", "1")
            # (a rank busy saving or evaluating marks itself when it meets the broken group)
            deadline = time.monotonic() + 10.0
            others = [r for r in range(self.world) if r != self.rank]
            while True:
                gone = [r for r in others if not store.check([f"{_STORE_PREFIX}alive/{r}"])]
                if not gone or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
        except Exception:  # noqa: BLE001 (the store went with its host)
            first = (str(error).strip().splitlines() or ["?"])[0][:120]
            return f"another process of the run is gone ({first})"
        self.gone = gone
        if not gone:
            first = (str(error).strip().splitlines() or ["?"])[0][:120]
            return f"a collective operation failed ({first})"
        names = ", ".join(str(r) for r in gone)
        who = f"process rank {names} {of} is" if len(gone) == 1 else f"process ranks {names} {of} are"
        return f"{who} gone (killed, or stopped by an error shown above)"

    def says_lost(self) -> bool:
        """Whether this rank reports a lost rank: the lowest rank still there (rank 0 when
        which one is gone could not be told), so that the news is one line."""
        alive = [r for r in range(self.world) if r not in (self.gone or [])]
        return self.rank == (alive[0] if alive else 0)

    def finish(self, clean: bool) -> None:
        """Leave the process group. clean: this rank ended normally; then (or after a failure
        every rank saw together) the ranks wait for each other first, so that none leaves
        while another still uses the group. After a failure of this rank alone it leaves at
        once: the others are in some other collective operation, which then fails."""
        global _active
        if self.on:
            import torch.distributed as dist

            if dist.is_initialized():
                # A DistributedDataParallel left alive (its reducer hangs on the model's
                # gradient hooks, in reference cycles) keeps the group alive past this point,
                # and gloo's threads then abort the interpreter's exit (SIGABRT, now and then).
                gc.collect()
                with contextlib.suppress(Exception):
                    if self._lost is None and (clean or self.failed_together):
                        dist.barrier(group=self.control)
                    dist.destroy_process_group()
        _active = None


def env_world() -> int:
    """How many processes torchrun's environment says the run has (1 outside torchrun)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def current() -> Dist | None:
    """The process group this process joined, if any."""
    return _active


def start(device_request: str | None = "auto") -> Dist:
    """Join the run torchrun started: pick this rank's device (cuda:LOCAL_RANK, or the CPU),
    its backend (NCCL on CUDA where PyTorch has it, else gloo), and start the process group.
    One process (no torchrun, or a world of 1): a Dist of one, on the device asked for.
    ValueError names what cannot work."""
    global _active
    env = os.environ
    world = env_world()
    if world <= 1:
        return Dist(device=pick_device(device_request))
    import torch.distributed as dist

    try:
        rank, local_rank = int(env["RANK"]), int(env.get("LOCAL_RANK", "0"))
    except (KeyError, ValueError):
        raise ValueError("WORLD_SIZE is set but RANK is not: start several processes with "
                         "torchrun (or charchat train --gpus N)") from None
    req = (device_request or "auto").lower()
    if req == "auto":
        req = "cuda" if torch.cuda.is_available() else "cpu"
    if req.startswith("cuda"):
        if req != "cuda":
            raise ValueError(f"--device {device_request}: with several processes each takes "
                             "its own GPU (cuda:LOCAL_RANK); use --device cuda or auto")
        n = torch.cuda.device_count()
        # A scheduler that gives each process its one GPU (CUDA_VISIBLE_DEVICES) shows it as 0.
        index = local_rank if local_rank < n else 0 if n == 1 else None
        if index is None:
            raise ValueError(f"process rank {rank} needs GPU {local_rank}, but this machine "
                             f"has {n}: start at most {n} processes a machine")
        torch.cuda.set_device(index)
        info = pick_device(f"cuda:{index}")
        backend = "nccl" if dist.is_nccl_available() else "gloo"
    elif req == "cpu":
        info = pick_device("cpu")
        backend = "gloo"
        # Share the cores: each process its part (torchrun sets 1 for all when not told).
        if "CHARCHAT_THREADS" in env:
            torch.set_num_threads(max(1, int(env["CHARCHAT_THREADS"])))
    else:
        raise ValueError(f"--device {device_request}: training across processes runs on CUDA "
                         "GPUs or on CPUs")
    if not dist.is_available():
        raise ValueError("this PyTorch build has no torch.distributed")
    _die_with_parent()
    if backend == "nccl":
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=NCCL_TIMEOUT_S),
                                device_id=info.device)
        control = dist.new_group(backend="gloo", timeout=datetime.timedelta(seconds=TIMEOUT_S))
    else:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=TIMEOUT_S))
        control = None  # (the default group is gloo already)
    _active = Dist(rank, world, local_rank, info, control)
    return _active


def _die_with_parent() -> None:
    """Ask Linux for a SIGTERM when the launcher (torchrun's agent) dies: the processes run in
    sessions of their own, so a launcher killed outright would leave them training. SIGTERM
    stops a run as Ctrl-C does, with the best model kept."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the launcher was already gone
            os.kill(os.getpid(), signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def rank_seed(seed: int, rank: int, step: int) -> int:
    """The seed of a rank's own random stream (dropout) from `step` on: rank 0 keeps the run's
    stream, so one process trains as before."""
    return (seed * 1_000_003 + rank * 7_919 + step) % (2**63 - 1)
