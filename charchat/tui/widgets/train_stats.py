"""The live figures of a training run, as a compact grid."""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ...formatting import fmt_time


class TrainStats(Static):
    """update_from(step_event, eval_event, ...) keeps the newest value of each figure."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.values: dict[str, object] = {}

    def reset(self) -> None:
        self.values.clear()
        self._paint()

    def on_mount(self) -> None:
        self._paint()

    def set_values(self, **values) -> None:
        self.values.update({k: v for k, v in values.items() if v is not None})
        self._paint()

    def _paint(self) -> None:
        v = self.values

        def num(key: str, fmt: str) -> str:
            x = v.get(key)
            return format(x, fmt) if isinstance(x, (int, float)) and math.isfinite(x) else "–"

        step = str(v.get("step", "–"))
        if v.get("max_steps"):
            step += f" / {v['max_steps']}"
        best = num("best", ".4f")
        if v.get("best_step") is not None and best != "–":
            best += f" @{v['best_step']}"
        tps = v.get("tps")
        tps_s = f"{tps / 1000:.1f}k" if isinstance(tps, (int, float)) and tps >= 1000 else num("tps", ".0f")
        eta = v.get("eta")
        time_s = fmt_time(v.get("elapsed")) + (f" ({fmt_time(eta)} left)" if eta else "")
        # Bits per character of the validation text: the scale on which models with different
        # tokenizers compare (loss and perplexity are per token).
        bpc = num("bpc", ".3f")
        width = self.size.width or 100
        if width >= 70:
            # Short labels, five figures a row (four under 90 columns, where five would crop
            # the time); the plot below is titled "loss".
            cells = [
                ("step", step), ("train", num("train", ".4f")),
                ("val", num("val", ".4f")), ("bpc", bpc), ("ppl", num("ppl", ".3f")),
                ("best", best), ("lr", num("lr", ".2e")),
                ("tok/s", tps_s), ("time", time_s),
            ]
            cols = 5 if width >= 90 else 4
        else:
            cells = [
                ("step", step), ("train loss", num("train", ".4f")),
                ("val loss", num("val", ".4f")), ("bits/char", bpc),
                ("perplexity", num("ppl", ".3f")), ("best val", best),
                ("learning rate", num("lr", ".2e")), ("tokens/s", tps_s),
                ("time", time_s),
            ]
            cols = 2
        table = Table.grid(padding=(0, 1), expand=True)
        for _ in range(cols):
            table.add_column(style="dim", no_wrap=True, justify="right")
            table.add_column(style="bold", no_wrap=True)
        for i in range(0, len(cells), cols):
            row = []
            for label, value in cells[i:i + cols]:
                row += [label, Text(value)]
            table.add_row(*row)
        self.update(table)

    def on_resize(self) -> None:
        self._paint()
