"""Train and validation loss over steps: a textual-plot PlotWidget, redrawn at most twice a
second however often points arrive."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widget import Widget
from textual_plot import HiResMode, PlotWidget

MAX_POINTS = 400  # train points drawn; more are thinned out (the newest always kept)
REDRAW_S = 0.5


def thin(points: list[tuple[int, float]], limit: int = MAX_POINTS) -> list[tuple[int, float]]:
    """At most `limit` points, evenly spread, with the first and newest kept."""
    n = len(points)
    if n <= limit:
        return points
    step = (n - 1) / (limit - 1)
    return [points[round(i * step)] for i in range(limit)]


class LossPlot(Widget):
    """add_train / add_val append points; the plot catches up on its own timer."""

    DEFAULT_CSS = """
    LossPlot {
        height: 1fr;
        min-height: 7;
    }
    LossPlot PlotWidget {
        height: 1fr;
    }
    LossPlot PlotWidget #legend {
        border: round $foreground 40%;
    }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.train: list[tuple[int, float]] = []
        self.val: list[tuple[int, float]] = []
        self._dirty = False
        self.redraws = 0
        self.x_max: float | None = None  # the run's last step, when known (max_steps)

    def compose(self) -> ComposeResult:
        plot = PlotWidget(allow_pan_and_zoom=False)
        plot.can_focus = False
        yield plot

    def on_mount(self) -> None:
        plot = self.query_one(PlotWidget)
        plot.margin_top = 1
        plot.margin_bottom = 2
        plot.margin_left = 7
        plot.set_xlabel("step")
        plot.set_ylabel("loss")
        self.set_interval(REDRAW_S, self._redraw_if_needed)
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self) -> None:
        self._dirty = True

    def clear(self) -> None:
        self.train.clear()
        self.val.clear()
        self._dirty = True
        self._redraw_if_needed()

    def add_train(self, points: list[tuple[int, float]]) -> None:
        if points:
            self.train.extend(points)
            self._dirty = True

    def add_val(self, step: int, loss: float) -> None:
        self.val.append((step, loss))
        self._dirty = True

    def _redraw_if_needed(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        self.redraws += 1
        plot = self.query_one(PlotWidget)
        plot.clear()
        train = thin(self.train)
        if train:
            plot.plot([p[0] for p in train], [p[1] for p in train],
                      line_style=self.app.theme_variables.get("primary", "blue"),
                      hires_mode=HiResMode.BRAILLE, label="train")
        if self.val:
            style = self.app.theme_variables.get("warning", "yellow")
            if len(self.val) > 1:
                plot.plot([p[0] for p in self.val], [p[1] for p in self.val],
                          line_style=style, hires_mode=HiResMode.BRAILLE, label="val")
            else:
                plot.scatter([p[0] for p in self.val], [p[1] for p in self.val],
                             marker_style=style, hires_mode=HiResMode.BRAILLE, label="val")
        if train or self.val:
            xs = [p[0] for p in train] + [p[0] for p in self.val]
            ys = [p[1] for p in train] + [p[1] for p in self.val]
            x_hi = max(max(xs), self.x_max or 0, 1)
            plot.set_xlimits(0, x_hi)
            lo, hi = min(ys), max(ys)
            pad = max((hi - lo) * 0.05, 0.02)
            plot.set_ylimits(max(0.0, lo - pad), hi + pad)
            plot.show_legend()
