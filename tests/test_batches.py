import numpy as np
import pytest

from charchat.batches import WindowSampler


def epoch_of(sampler: WindowSampler) -> np.ndarray:
    """The rest of the sampler's current epoch, drawn one start at a time."""
    epoch = sampler.epoch
    out = []
    while True:
        start = sampler.next(1)[0]
        if sampler.epoch != epoch:
            sampler._cursor -= 1  # leave the new epoch's first window for the caller
            return np.array(out)
        out.append(start)


@pytest.mark.parametrize("n_tokens, block", [(1000, 16), (1001, 16), (17, 16), (50, 7), (5000, 64)])
def test_an_epoch_visits_back_to_back_windows_once_each(n_tokens, block):
    sampler = WindowSampler(n_tokens, block, seed=3)
    for _ in range(4):
        starts = epoch_of(sampler)
        assert len(starts) > 0 and len(set(starts.tolist())) == len(starts)
        ordered = np.sort(starts)
        phase = ordered[0]
        assert 0 <= phase < block
        assert (np.diff(ordered) == block).all()  # back to back, no overlap, no gap
        assert ordered[-1] + block + 1 <= n_tokens  # every window holds inputs and targets
        assert ordered[-1] + 2 * block + 1 > n_tokens  # and no room was left for one more


def test_epochs_differ_in_phase_and_order():
    sampler = WindowSampler(10_000, 32, seed=0)
    epochs = [epoch_of(sampler) for _ in range(6)]
    assert len({int(e.min()) for e in epochs}) > 1
    assert not np.array_equal(epochs[0][:20], epochs[1][:20])
    # Random order, not sorted.
    assert not np.array_equal(epochs[0], np.sort(epochs[0]))


def test_batches_run_across_epoch_boundaries_without_losing_windows():
    a = WindowSampler(400, 16, seed=7)
    b = WindowSampler(400, 16, seed=7)
    one_by_one = np.concatenate([epoch_of(a) for _ in range(3)])
    batched = np.concatenate([b.next(5) for _ in range(len(one_by_one) // 5)])
    assert np.array_equal(batched, one_by_one[:len(batched)])


def test_the_same_seed_gives_the_same_windows():
    a, b, c = WindowSampler(5000, 64, 1), WindowSampler(5000, 64, 1), WindowSampler(5000, 64, 2)
    xa, xb, xc = a.next(40), b.next(40), c.next(40)
    assert np.array_equal(xa, xb) and not np.array_equal(xa, xc)


@pytest.mark.parametrize("drawn", [0, 3, 11, 12, 25])  # 12 windows an epoch: 12 ends one
def test_a_saved_state_replays_the_rest_of_the_run(drawn):
    a = WindowSampler(64 * 12 + 1, 64, seed=5)
    for _ in range(drawn):
        a.next(1)
    saved = a.state()
    b = WindowSampler(64 * 12 + 1, 64, seed=99)
    b.load_state(saved)
    assert b.epoch == a.epoch
    assert np.array_equal(b.next(30), a.next(30))


def test_a_corpus_shorter_than_a_window_is_refused():
    with pytest.raises(ValueError, match="cannot hold one window"):
        WindowSampler(16, 16, seed=0)


def test_numpy_batch_sizes_keep_the_state_serialisable():
    sampler = WindowSampler(1000, 16, seed=0)
    sampler.next(np.int64(5))
    restored = WindowSampler(1000, 16, seed=1)
    restored.load_state(sampler.state())
    assert np.array_equal(restored.next(7), sampler.next(7))


@pytest.fixture
def computed_order(monkeypatch):
    """Samplers use the computed permutation whatever their size."""
    from charchat import batches

    monkeypatch.setattr(batches, "ARRAY_WINDOWS", 0)


@pytest.mark.parametrize("n_tokens, block", [(1000, 16), (17, 16), (50, 7), (70_001, 8)])
def test_a_computed_order_visits_every_window_once_too(computed_order, n_tokens, block):
    sampler = WindowSampler(n_tokens, block, seed=3)
    assert not isinstance(sampler._order, np.ndarray)
    epochs = []
    for _ in range(3):
        starts = epoch_of(sampler)
        ordered = np.sort(starts)
        assert len(set(starts.tolist())) == len(starts) > 0
        assert (np.diff(ordered) == block).all() and ordered[-1] + 2 * block + 1 > n_tokens
        epochs.append(starts)
    if len(epochs[0]) > 20:
        assert not np.array_equal(epochs[0], np.sort(epochs[0]))  # shuffled
        assert not np.array_equal(epochs[0][:20], epochs[1][:20])


def test_a_computed_order_replays_from_a_saved_state(computed_order):
    a = WindowSampler(64 * 500 + 1, 64, seed=5)
    for _ in range(7):
        a.next(97)
    b = WindowSampler(64 * 500 + 1, 64, seed=99)
    b.load_state(a.state())
    assert np.array_equal(a.next(1200), b.next(1200))


def test_a_huge_corpus_costs_no_memory_for_its_order():
    import tracemalloc

    tracemalloc.start()
    sampler = WindowSampler(10**11, 64, seed=1)  # 1.6 billion windows an epoch
    starts = sampler.next(64)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000  # (an array of the order would be 6 GB)
    assert len(set(starts.tolist())) == 64 and (starts % 64 == starts[0] % 64).all()
    assert starts.min() >= 0 and starts.max() + 65 <= 10**11


def test_a_state_saved_before_computed_orders_keeps_its_array_order(computed_order):
    import json

    a = WindowSampler(64 * 50 + 1, 64, seed=5)
    a.next(7)
    old = json.loads(a.state())
    del old["order"]  # as an older version saved it, when every order was an array
    b = WindowSampler(64 * 50 + 1, 64, seed=5)
    b.load_state(json.dumps(old))
    assert isinstance(b._order, np.ndarray)
    from charchat import batches
    batches.ARRAY_WINDOWS = 1 << 22  # (the fixture restores it) the array order of old
    c = WindowSampler(64 * 50 + 1, 64, seed=5)
    c.next(7)
    assert np.array_equal(b.next(60), c.next(60))
