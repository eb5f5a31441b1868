"""CUB-200-2011 (Wah et al. 2011): 11,788 photos of 200 bird species, 41 to 60 per species.

Read from ``<data dir>/CUB_200_2011/images/<class>/<image>.jpg`` (the official archive's
layout; ``images.txt``, ``classes.txt`` and the rest beside it are not needed), or from the
official ``<data dir>/CUB_200_2011.tgz``, which is checked against its published md5 and
extracted once beside itself (downloaded first when it is missing too). Whole images, no
bounding-box crop. Splits: CloserLook's 100 / 50 / 50 classes (``split_files.cub_classes``);
the images of a class are its files sorted by name.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from ..errors import DataError
from ..outputs import unique_suffix
from .files import RemoteFile, fetch, file_digest, replace_hint
from .image_splits import SplitSource
from .image_tree import class_folders, image_files, shown
from .split_files import SPLITS, cub_classes

CUB_ARCHIVE = RemoteFile(
    "CUB_200_2011.tgz",
    "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
    "md5:97eceeb196236b17998738112f37df78",
)
FOLDER = "CUB_200_2011"
IMAGE_SIZE = 84
MIN_IMAGES_PER_CLASS = 41
"""The smallest CUB class holds 41 images (the largest 60)."""


def images_folder(root: Path, source: str | Path | None = None) -> Path:
    """The ``images`` folder of CUB: in ``source`` when given (the ``CUB_200_2011`` folder, its
    ``images`` folder, or the official .tgz), else under the data directory ``root``,
    extracting (and first downloading) the official archive when needed."""
    if source is not None:
        path = Path(source).expanduser()
        if path.is_file():
            return extract_archive(path, path.parent) / "images"
        if (path / "images").is_dir():
            return path / "images"
        if path.is_dir():
            return path
        raise DataError(
            f"CUB source {path} does not exist; give the CUB_200_2011 folder, its images "
            f"folder or {CUB_ARCHIVE.relpath}"
        )
    tree = root / FOLDER / "images"
    if tree.is_dir():
        return tree
    archive = root / CUB_ARCHIVE.relpath
    if not archive.is_file():
        archive = fetch(CUB_ARCHIVE, root)  # a DataError naming the file when offline
    return extract_archive(archive, root) / "images"


def extract_archive(archive: Path, into: Path) -> Path:
    """Extract ``CUB_200_2011/`` of the official ``archive`` into ``into`` once (checked
    against the published md5 first; written under a temporary name, then renamed, so a cut
    extraction never passes for a tree) and return ``into/CUB_200_2011``."""
    final = into / FOLDER
    if (final / "images").is_dir():
        return final
    fix = replace_hint(archive, CUB_ARCHIVE)
    algorithm, expected = CUB_ARCHIVE.digest.split(":")  # type: ignore[union-attr]
    try:
        actual = file_digest(archive, algorithm)
    except OSError as exc:
        raise DataError(f"cannot read {archive} ({exc.strerror or exc}); {fix}") from exc
    if actual != expected:
        raise DataError(
            f"{archive} has {algorithm} {actual}, expected {expected} (the official "
            f"{CUB_ARCHIVE.relpath}); {fix}"
        )
    tmp = into / f".{FOLDER}.extracting-{unique_suffix()}"
    try:
        tmp.mkdir(parents=True)
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:  # one pass over the compressed stream
                if _wanted(member):
                    _extract(tar, member, tmp)
        if not (tmp / FOLDER / "images").is_dir():
            raise DataError(f"{archive} holds no {FOLDER}/images folder; {fix}")
        try:
            os.rename(tmp / FOLDER, final)
        except OSError:
            if not (final / "images").is_dir():  # not another process extracting meanwhile
                raise
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive} is not a readable tar.gz archive ({exc}); {fix}") from exc
    except OSError as exc:
        raise DataError(
            f"cannot extract {archive} into {into} ({exc.strerror or exc}); extract it by hand "
            f"(tar xzf {archive} -C DIR) into a writable data folder DIR and point "
            f"--data-dir / $HYPERMAML_DATA at DIR"
        ) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _wanted(member: tarfile.TarInfo) -> bool:
    """A plain file or folder under ``CUB_200_2011/`` with no ``..`` or absolute part."""
    parts = PurePosixPath(member.name).parts
    return (
        bool(parts)
        and parts[0] == FOLDER
        and ".." not in parts
        and not member.name.startswith("/")
        and (member.isfile() or member.isdir())
    )


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, into: Path) -> None:
    if hasattr(tarfile, "data_filter"):
        tar.extract(member, into, filter="data")
    else:  # pragma: no cover - Python without extraction filters
        tar.extract(member, into)


def cub_source(root: Path, source: str | Path | None = None) -> SplitSource:
    """The CUB images of the three splits (train, val, test), classes in split-file order; a
    DataError naming the split classes missing from the tree, or left without images."""
    folder = images_folder(root, source)
    splits = {split: cub_classes(split) for split in SPLITS}
    wanted = [c for names in splits.values() for c in names]
    present = set(class_folders(folder))
    missing = [c for c in wanted if c not in present]
    if missing:
        raise DataError(
            f"{folder} lacks {len(missing)} of the 200 CUB class folders of the split: "
            f"{shown(missing)}; put the official CUB_200_2011 images there (or the official "
            f"{CUB_ARCHIVE.relpath} in the data folder)"
        )
    files = {c: [f"{c}/{name}" for name in image_files(folder / c)] for c in wanted}
    empty = [c for c in wanted if not files[c]]
    if empty:
        raise DataError(
            f"{len(empty)} CUB class folder(s) in {folder} hold no image: {shown(empty)}; "
            f"restore them from the official archive"
        )
    return SplitSource.ordered("cub", folder, splits, files, f"CUB-200-2011 at {folder}")
