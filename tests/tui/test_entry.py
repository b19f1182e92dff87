"""`charchat` and `charchat chat` open the app; run() returns an exit code."""

from charchat import cli
from charchat.tui import app as app_module


def test_cli_opens_the_app(monkeypatch):
    calls = []
    monkeypatch.setattr(app_module, "run", lambda model=None: calls.append(model) or 0)
    assert cli.main([]) == 0
    assert cli.main(["chat", "--model", "prose"]) == 0
    assert calls == [None, "prose"]


def test_run_returns_the_exit_code_and_stops_background_work(monkeypatch):
    stopped = []
    monkeypatch.setattr(app_module.CharChatApp, "run", lambda self: None)
    monkeypatch.setattr(app_module.CharChatApp, "shutdown", lambda self: stopped.append(True))
    assert app_module.run("x") == 0
    assert stopped == [True]
