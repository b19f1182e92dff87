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

An epoch's order is a shuffled array of window numbers while that is small (up to
ARRAY_WINDOWS of them, 16 MB); beyond, a keyed permutation computed as windows are drawn
(a Feistel network, see _Permutation), so the sampler's memory stays the same whatever the
corpus's size (a 40 GB text at block 64 has 600M windows: 2.4 GB of order). Training across
processes, every rank holds this sampler, so that bound is per rank.
"""

from __future__ import annotations

import json

import numpy as np


ARRAY_WINDOWS = 1 << 22


class _Permutation:
    """A random bijection of range(n) from four 64-bit keys, evaluated on arrays of positions
    without storing it: a 4-round Feistel network on the smallest even number of bits that
    holds n, with cycle-walking (a value >= n goes through the network again until it lands
    in range; the domain is under 4n, so a few passes on average)."""

    def __init__(self, n: int, keys: np.ndarray) -> None:
        bits = max(2, (n - 1).bit_length())
        bits += bits % 2
        self.n = n
        self.half = np.uint64(bits // 2)
        self.mask = np.uint64((1 << (bits // 2)) - 1)
        self.keys = [np.uint64(k) for k in keys]

    def _round(self, x: np.ndarray, key: np.uint64) -> np.ndarray:
        z = (x + key) * np.uint64(0x9E3779B97F4A7C15)  # (arrays of uint64 wrap, as wanted)
        z ^= z >> np.uint64(31)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(29)
        return z & self.mask

    def _once(self, x: np.ndarray) -> np.ndarray:
        left, right = x >> self.half, x & self.mask
        for key in self.keys:
            left, right = right, left ^ self._round(right, key)
        return (left << self.half) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        x = self._once(positions.astype(np.uint64))
        out = x >= np.uint64(self.n)
        while out.any():
            x[out] = self._once(x[out])
            out = x >= np.uint64(self.n)
        return x.astype(np.int64)


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
        self._array_only = False  # a state saved before computed orders: arrays throughout
        self._new_epoch()

    def _new_epoch(self) -> None:
        self._epoch_rng_state = self.rng.bit_generator.state
        last_start = self.n_tokens - self.block_size - 1  # the last window ends at the last id
        self._phase = int(self.rng.integers(0, min(self.block_size - 1, last_start),
                                            endpoint=True))
        n_windows = (last_start - self._phase) // self.block_size + 1
        self._n_windows = n_windows
        if n_windows <= ARRAY_WINDOWS or self._array_only:
            # Window numbers, 4 bytes each; start offsets are computed as they are drawn.
            self._order = np.arange(n_windows, dtype=np.int32)
            self.rng.shuffle(self._order)
        else:
            self._order = _Permutation(n_windows, self.rng.integers(0, 2**63, size=4))
        self._cursor = 0

    def _windows(self, start: int, stop: int) -> np.ndarray:
        """Window numbers at positions start..stop-1 of this epoch's order."""
        if isinstance(self._order, np.ndarray):
            return self._order[start:stop].astype(np.int64)
        return self._order(np.arange(start, stop, dtype=np.int64))

    def next(self, batch_size: int) -> np.ndarray:
        """The start offsets of the next batch_size windows (crossing into a new epoch when
        this one runs out)."""
        batch_size = int(batch_size)
        out = np.empty(batch_size, dtype=np.int64)
        filled = 0
        while filled < batch_size:
            if self._cursor == self._n_windows:
                self.epoch += 1
                self._new_epoch()
            take = min(batch_size - filled, self._n_windows - self._cursor)
            window = self._windows(self._cursor, self._cursor + take)
            out[filled:filled + take] = self._phase + window * self.block_size
            self._cursor += take
            filled += take
        return out

    def state(self) -> str:
        return json.dumps({"epoch": self.epoch, "epoch_rng": self._epoch_rng_state,
                           "cursor": self._cursor, "order": "computed-above-4M"})

    def load_state(self, state: str) -> None:
        st = json.loads(state)
        self._array_only = "order" not in st  # (saved before: its order was an array)
        self.rng.bit_generator.state = st["epoch_rng"]
        self._new_epoch()  # replays the epoch's phase and order from its starting state
        self.epoch = int(st["epoch"])
        self._cursor = min(int(st["cursor"]), self._n_windows)
