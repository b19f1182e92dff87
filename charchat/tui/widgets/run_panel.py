"""The run panel of the training screen: title, progress, figures, the loss plot, a text sample
and the outcome, drawn from the training job's batches of events (charchat.tui.engine)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, ProgressBar, Static

from ...formatting import fmt_params
from .loss_plot import LossPlot
from .train_stats import TrainStats


class RunPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield Static("Not started. Live progress appears here.", id="run-title")
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=1.0, show_eta=False, id="progress")
        yield TrainStats(id="stats")
        yield LossPlot(id="plot")
        yield Static(Text(""), id="sample")
        yield Static(id="outcome-text")
        with Horizontal(id="outcome"):
            yield Button("Chat with this model", id="chat-with", variant="success", compact=True)
            yield Button("Stop training", id="stop", variant="error", compact=True)

    def on_mount(self) -> None:
        self.query_one("#chat-with").display = False
        self.query_one("#stop").display = False
        sample = self.query_one("#sample")
        sample.border_title = "sample"
        sample.display = False

    def reset(self, name: str) -> None:
        """Clear it for a new run."""
        self.query_one(TrainStats).reset()
        self.query_one(LossPlot).clear()
        self.query_one("#progress", ProgressBar).update(total=1.0, progress=0)
        sample = self.query_one("#sample", Static)
        sample.update(Text(""))
        sample.display = False
        outcome = self.query_one("#outcome-text", Static)
        outcome.update("")
        outcome.set_classes("")
        self.query_one("#chat-with").display = False
        stop = self.query_one("#stop", Button)
        stop.display, stop.disabled = True, False
        self.query_one("#run-title", Static).update(Text(f"Starting {name}…", style="bold"))

    def show(self, b) -> list[str]:
        """Draw a batch of progress; returns the status lines it calls for, oldest first."""
        said = list(b.notes)
        stats, plot = self.query_one(TrainStats), self.query_one(LossPlot)
        bar = self.query_one("#progress", ProgressBar)
        if b.past:  # a resumed run's earlier curves
            plot.add_train(b.train_points)
            for ev in b.evals:
                plot.add_val(ev.step, ev.val_loss)
            return said
        if b.start is not None:
            ev, d = b.start, b.start.start
            c = d.config
            plot.x_max = ev.max_steps
            self.query_one("#run-title", Static).update(Text.assemble(
                (d.name, "bold"),
                f" · {fmt_params(d.params)} params on {d.device} · "
                f"{c.get('n_layer')}×{c.get('n_embd')}, {c.get('n_head')} heads, "
                f"context {c.get('block_size')}, batch {c.get('batch_size')}"
                + (f", {c.get('tokenizer')} tokens" if c.get("tokenizer", "char") != "char"
                   else "")
                + (" · resumed" if d.resumed else "")))
            said.append("training… " + "; ".join(d.notes))
            stats.set_values(step=ev.step, max_steps=ev.max_steps)
        if b.train_points:
            plot.add_train(b.train_points)
        if b.step is not None:
            ev = b.step
            stats.set_values(step=ev.step, max_steps=ev.max_steps, train=ev.train_loss,
                             lr=ev.lr, tps=ev.tokens_per_s, elapsed=ev.elapsed, eta=ev.eta,
                             best=ev.best_val_loss)
            bar.update(progress=ev.progress)
        for ev in b.evals:
            plot.add_val(ev.step, ev.val_loss)
            if ev.ppl is None:
                continue  # from the run's earlier sessions (its history)
            stats.set_values(step=ev.step, val=ev.val_loss, ppl=ev.ppl, bpc=ev.bpc,
                             best=ev.best_val_loss,
                             best_step=ev.step if ev.improved else None, elapsed=ev.elapsed)
            bar.update(progress=ev.progress)
            said.append(f"step {ev.step}: val loss {ev.val_loss:.4f}"
                        + (f" ({ev.bpc:.3f} bits a character)" if ev.bpc is not None else "")
                        + (" · best so far, saved" if ev.improved else ""))
        if b.sample is not None:
            sample = self.query_one("#sample", Static)
            sample.display = True
            sample.border_title = f"sample at step {b.sample.step}"
            sample.update(Text(b.sample.sample.strip("\n")[-400:]))
        if b.end is not None:
            stats.set_values(step=b.end.step, best=b.end.best_val_loss, elapsed=b.end.elapsed,
                             best_step=b.end.best_step, eta=0.0)
        return said

    def stopping(self) -> None:
        self.query_one("#stop", Button).disabled = True

    def show_state(self, state: str) -> None:
        """The stop button while a run goes on (disabled once it is stopping)."""
        stop = self.query_one("#stop", Button)
        stop.display = state in ("running", "stopping")
        stop.disabled = state == "stopping"

    def show_outcome(self, text: Text, level: str, kept: str | None, full: bool) -> None:
        """How the run ended; `kept` names the model it saved (a chat button offers it), and
        `full` fills the progress bar (the run ran its course)."""
        if full:
            self.query_one("#progress", ProgressBar).update(progress=1.0)
        self.query_one("#stop").display = False
        outcome = self.query_one("#outcome-text", Static)
        outcome.update(text)
        outcome.set_classes(f"-{level}")
        chat = self.query_one("#chat-with", Button)
        chat.display = kept is not None
        if kept is not None:
            chat.focus()

    def did_not_start(self, name: str) -> None:
        self.query_one("#run-title", Static).update(Text(f"{name} did not start", style="bold"))
