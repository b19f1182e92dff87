"""Training windows, drawn epoch by epoch.

Why not independent random windows: a run on a CPU budget sees its corpus only once or twice
(100 s on tinyshakespeare is about 1.5 passes), and windows drawn with replacement leave about a
fifth of the text unseen after 1.5 passes (e^-1.5 of it, on average) while showing other parts
three times. Here each epoch cuts the training split into back-to-back windows at a random
phase and visits all of them once, in random order; the next epoch draws a new phase and
order. Each window holds block_size + 1 ids: block_size inputs and, shifted by one, their
targets.

The sampler's whole state is the data generator's state at the start of the current epoch
plus a cursor into it, so a resumed run replays exactly the windows it would have seen.
"""

from __future__ import annotations

import json

import numpy as np


class WindowSampler:
    """Start offsets of training windows, batch_size at a time, epoch after epoch."""

    def __init__(self, n_tokens: int, block_size: int, seed: int) -> None:
        if n_tokens < block_size + 1:
            raise ValueError(
                f"{n_tokens} training tokens cannot hold one window of {block_size + 1}")
        self.n_tokens = n_tokens
        self.block_size = block_size
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.epoch = 0
        self._new_epoch()

    def _new_epoch(self) -> None:
        self._epoch_rng_state = self.rng.bit_generator.state
        last_start = self.n_tokens - self.block_size - 1  # the last window ends at the last id
        self._phase = int(self.rng.integers(0, min(self.block_size - 1, last_start),
                                            endpoint=True))
        n_windows = (last_start - self._phase) // self.block_size + 1
        # The order holds window numbers, 4 bytes each where they fit (a 1 GB corpus at block
        # 64 has 16M windows); start offsets are computed as they are drawn.
        dtype = np.int32 if n_windows < 2**31 else np.int64
        self._order = np.arange(n_windows, dtype=dtype)
        self.rng.shuffle(self._order)
        self._cursor = 0

    def next(self, batch_size: int) -> np.ndarray:
        """The start offsets of the next batch_size windows (crossing into a new epoch when
        this one runs out)."""
        batch_size = int(batch_size)
        out = np.empty(batch_size, dtype=np.int64)
        filled = 0
        while filled < batch_size:
            if self._cursor == len(self._order):
                self.epoch += 1
                self._new_epoch()
            take = min(batch_size - filled, len(self._order) - self._cursor)
            window = self._order[self._cursor:self._cursor + take].astype(np.int64)
            out[filled:filled + take] = self._phase + window * self.block_size
            self._cursor += take
            filled += take
        return out

    def state(self) -> str:
        return json.dumps(
            {"epoch": self.epoch, "epoch_rng": self._epoch_rng_state, "cursor": self._cursor})

    def load_state(self, state: str) -> None:
        st = json.loads(state)
        self.rng.bit_generator.state = st["epoch_rng"]
        self._new_epoch()  # replays the epoch's phase and order from its starting state
        self.epoch = int(st["epoch"])
        self._cursor = min(int(st["cursor"]), len(self._order))
