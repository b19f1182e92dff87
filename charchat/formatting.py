"""Small text formats shared by the command line and the app (no torch, no Textual)."""

from __future__ import annotations

import math


def fmt_time(s: float | None) -> str:
    """Seconds as mm:ss, or h:mm:ss from an hour; '--:--' when unknown."""
    if s is None or not math.isfinite(s):
        return "--:--"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def fmt_params(n: int | None) -> str:
    """0.41M, 3.8k, 950: a parameter count at a glance."""
    if not n:
        return "?"
    if n >= 1e5:
        return f"{n / 1e6:.2f}M"
    if n >= 1e3:
        return f"{n / 1e3:.1f}k"
    return str(n)


def fmt_size(n: float) -> str:
    """A file size in decimal units: 950 B, 3.4 kB, 5.4 MB, 1.2 GB."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def fmt_date(t, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time stamp (seconds, from a file or a record) as local time; '?' when unknown or
    not a time (a hand-edited record)."""
    import time

    try:
        return time.strftime(fmt, time.localtime(float(t))) if t else "?"
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def model_label(m) -> str:
    """One line about a saved model (store.SavedModel): params, best val loss."""
    val = f"val {m.best_val_loss:.3f}" if m.best_val_loss is not None else "not evaluated"
    return f"{fmt_params(m.params)} params, {val}"


def corpus_label(summary) -> str:
    """A corpus summary (config.CorpusSummary) in a few words: 41.5k chars, prose."""
    if summary is None or not summary.chars:
        return "?"
    n = summary.chars
    size = f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k" if n >= 1e3 else str(n)
    return f"{size} chars, {summary.kind}"


def short_path(p: str) -> str:
    """A path as a person would type it: relative to the working folder when inside it."""
    import os

    try:
        rel = os.path.relpath(p)
        return rel if not rel.startswith("..") else p
    except ValueError:
        return p
