"""Listing a ``ROOT/<class>/<image>`` tree: class folders and the image files in each.

Hidden entries (names starting with ".") are ignored, and so are files whose name does not end
in an image suffix (``images.IMAGE_SUFFIXES``, any case), such as ``Thumbs.db``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DataError
from .images import IMAGE_SUFFIXES


def _entries(folder: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as it:
            return [e for e in it if not e.name.startswith(".")]
    except OSError as exc:
        raise DataError(
            f"cannot list {folder} ({exc.strerror or exc}); check the path and its permissions"
        ) from exc


def class_folders(root: Path) -> list[str]:
    """The names of the sub-folders of ``root``, sorted."""
    return sorted(e.name for e in _entries(root) if e.is_dir())


def image_files(folder: Path) -> list[str]:
    """The names of the image files in ``folder``, sorted."""
    return sorted(
        e.name
        for e in _entries(folder)
        if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and e.is_file()
    )


def shown(names: list[str], limit: int = 5) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 7 others``: names in a one-line message."""
    head = ", ".join(names[:limit])
    return head + (f" and {len(names) - limit} others" if len(names) > limit else "")
