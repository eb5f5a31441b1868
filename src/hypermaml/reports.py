"""Result files: JSON reports written whole (never half-written) beside the user's other files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .outputs import write_text_atomic


def write_json(path: str | Path, report: Any) -> Path:
    """Write ``report`` as indented JSON to ``path`` (parents created), atomically: the file is
    written beside its place under a name unique to this writer, flushed to disk and renamed into
    it, so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, json.dumps(report, indent=2))
