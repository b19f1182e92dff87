"""The schedule's arithmetic (charchat.schedule): warmup, cosine, progress, time left."""

import pytest

from charchat import schedule

LR, MIN_LR, WARMUP = 1e-3, 1e-4, 10


def lr_at(step, progress):
    return schedule.lr_at(step, progress, WARMUP, LR, MIN_LR)


def test_lr_at():
    assert lr_at(0, 0.0) == pytest.approx(LR / WARMUP)
    assert lr_at(WARMUP - 1, 0.0) == pytest.approx(LR)
    assert lr_at(WARMUP, 0.0) == pytest.approx(LR)
    assert lr_at(WARMUP, 0.5) == pytest.approx((LR + MIN_LR) / 2)
    assert lr_at(WARMUP, 1.0) == pytest.approx(MIN_LR)
    assert lr_at(WARMUP, 7.0) == pytest.approx(MIN_LR)
    assert lr_at(WARMUP, -1.0) == pytest.approx(LR)


def test_cosine_progress_counts_after_warmup_in_steps_and_time():
    assert schedule.cosine_progress(10, 0.0, 10, 110, None, 0.0) == 0.0
    assert schedule.cosine_progress(60, 0.0, 10, 110, None, 0.0) == pytest.approx(0.5)
    # one minute, warmup took 20 s: at 40 s half of the remaining 40 s is gone
    assert schedule.cosine_progress(5, 40.0, 10, None, 1.0, 20.0) == pytest.approx(0.5)
    # both limits: the further one counts
    assert schedule.cosine_progress(60, 59.0, 10, 110, 1.0, 0.0) == pytest.approx(59 / 60)
    assert schedule.cosine_progress(5, 1.0, 10, None, None, 0.0) == 0.0


def test_done_fraction_is_the_larger_of_steps_and_time():
    assert schedule.done_fraction(50, 10.0, 100, None) == 0.5
    assert schedule.done_fraction(10, 45.0, 100, 1.0) == 0.75
    assert schedule.done_fraction(500, 0.0, 100, None) == 1.0


def test_eta():
    assert schedule.eta(10, 45.0, None, 1.0, 0.1, 100, 0.0) == 15.0
    # 90 steps left at 0.1 s, and evaluations at 100 (and the final one) at 1 s each
    assert schedule.eta(10, 0.0, 100, None, 0.1, 50, 1.0) == pytest.approx(9.0 + 2.0)
    assert schedule.eta(10, 0.0, None, None, 0.1, 50, 1.0) is None


def test_timed_eval_interval():
    assert schedule.timed_eval_interval(0.01, 30.0) == 2000
    assert schedule.timed_eval_interval(1.0, 30.0) == 30
    assert schedule.timed_eval_interval(0.127, 30.0) == 230
    assert schedule.timed_eval_interval(10.0, 30.0) == 10
    assert schedule.eval_period(2.0) == 15.0 and schedule.eval_period(None) == 30.0
    assert schedule.step_eval_interval(3000) == 250 and schedule.step_eval_interval(5) == 1
