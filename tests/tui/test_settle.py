"""The tests' settle(): a worker cancelled on the way has ended; one that failed still fails."""

import threading

import pytest
from textual.app import App
from textual.worker import WorkerFailed

from .conftest import settle


class _Idle(App):
    pass


async def test_settle_counts_a_cancelled_worker_as_ended():
    release = threading.Event()
    app = _Idle()
    async with app.run_test() as pilot:
        worker = app.run_worker(lambda: release.wait(5), thread=True)
        await pilot.pause()
        worker.cancel()  # as Textual does when the screen that started it goes away
        release.set()
        await settle(pilot)
        assert worker.state.name == "CANCELLED"


async def test_settle_still_raises_a_failed_worker():
    def fail():
        raise ValueError("boom")
    app = _Idle()
    async with app.run_test() as pilot:
        app.run_worker(fail, thread=True, exit_on_error=False)
        with pytest.raises(WorkerFailed):
            await settle(pilot)


async def test_settle_raises_a_failed_worker_beside_a_cancelled_one():
    release = threading.Event()

    def fail():
        release.wait(5)
        raise ValueError("boom")
    app = _Idle()
    async with app.run_test() as pilot:
        cancelled = app.run_worker(lambda: release.wait(5), thread=True)
        app.run_worker(fail, thread=True, exit_on_error=False)
        await pilot.pause()
        cancelled.cancel()
        release.set()
        with pytest.raises(WorkerFailed):
            await settle(pilot)
