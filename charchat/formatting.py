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
