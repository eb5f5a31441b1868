"""Result files: JSON reports written whole (never half-written) beside the user's other files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_json(path: str | Path, report: Any) -> Path:
    """Write ``report`` as indented JSON to ``path`` (parents created), atomically: the file is
    written beside its place and renamed into it, so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(report, indent=2))
    os.replace(tmp, path)
    return path
