"""Reading images out of zip archives, with every way a file can be corrupt turned into a DataError.

A zip can be well formed (its directory reads) and still hold a member whose compressed stream is
garbled (``zlib.error``), whose CRC does not match (``BadZipFile``), that is cut short
(``EOFError``), or whose PNG does not decode (``OSError``, ``SyntaxError`` from Pillow). Each is
reported as a DataError naming the archive, the member and the fix.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ..errors import DataError

DECODE_ERRORS: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,  # bad CRC, bad local header
    zlib.error,  # garbled deflate stream
    EOFError,  # member cut short
    OSError,  # unreadable file; Pillow's UnidentifiedImageError and truncated images
    SyntaxError,  # Pillow: broken PNG chunks
    ValueError,  # Pillow: bad image parameters
    struct.error,  # Pillow: short chunk headers
    NotImplementedError,  # zip compression method not supported
    RuntimeError,  # encrypted zip member
)
"""What reading and decoding a zip member raises when the member is corrupt."""


def member_error(archive: Path, member: str | None, exc: BaseException, fix: str) -> DataError:
    """The DataError for a corrupt ``member`` of ``archive`` (None: the archive itself, which
    may also be unreadable, e.g. for lack of permission)."""
    if member is None:
        return DataError(
            f"{archive} is not a readable zip archive ({type(exc).__name__}: {exc}); {fix}"
        )
    return DataError(
        f"member {member} of {archive} is corrupt ({type(exc).__name__}: {exc}); {fix}"
    )


def decode_png(blob: bytes) -> np.ndarray:
    """Grayscale uint8 [H, W] pixels of a PNG (or any image Pillow reads)."""
    from PIL import Image

    with Image.open(io.BytesIO(blob)) as img:
        return np.asarray(img.convert("L"), dtype=np.uint8)


def zip_pngs(
    archive: Path, fix: str, shape: tuple[int, int] | None = None
) -> Iterator[tuple[str, np.ndarray]]:
    """(member name, grayscale uint8 pixels) of every ``.png`` member of ``archive``, in order.

    ``fix`` ends every error message (what to do about the file). ``shape``, when given, is the
    (H, W) every image must have. Raises DataError naming the archive and, when the fault lies in
    one, the member.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except DECODE_ERRORS as exc:
        raise member_error(archive, None, exc, fix) from exc
    with zf:
        for name in zf.namelist():
            if not name.endswith(".png"):
                continue
            try:
                pixels = decode_png(zf.read(name))
            except DECODE_ERRORS as exc:
                raise member_error(archive, name, exc, fix) from exc
            if shape is not None and pixels.shape != shape:
                raise DataError(
                    f"member {name} of {archive} is an image of {pixels.shape[1]}x"
                    f"{pixels.shape[0]} pixels, expected {shape[1]}x{shape[0]}; {fix}"
                )
            yield name, pixels
