"""matplotlib for the figures, drawn off-screen; an optional dependency (``hypermaml[plots]``)."""

from __future__ import annotations

from types import ModuleType

from ..extras import require


def pyplot(purpose: str) -> ModuleType:
    """``matplotlib.pyplot`` on the off-screen Agg backend, or a MissingExtraError that names
    ``hypermaml[plots]``; ``purpose`` says what the figure is."""
    matplotlib = require("matplotlib", purpose)
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", purpose)
