"""The errors hypermaml raises on bad input: each names the problem and the fix.

The command line prints them as one line (``hypermaml CMD: error: ...``) and exits with status 2;
a library caller can catch ``HypermamlError`` for all of them.
"""

from __future__ import annotations

import errno


class HypermamlError(Exception):
    """Base of every error raised on bad input (a file, a config, an argument)."""


class ConfigError(HypermamlError, ValueError):
    """A config file, override or argument names an unknown key, a value of the wrong type or
    out of range, or a path that cannot be used."""


class DataError(HypermamlError, RuntimeError):
    """A data file is missing, corrupt, or a request cannot be served by a dataset."""


class CheckpointError(HypermamlError, RuntimeError):
    """A path is not a readable hypermaml checkpoint, or does not fit the model asked for."""


class TrainingError(HypermamlError, RuntimeError):
    """Training cannot go on (a non-finite loss, a run folder in the way)."""


class MissingExtraError(HypermamlError, ImportError):
    """A command needs an optional dependency that is not installed."""


_OS_ERROR_FIXES = {
    errno.EACCES: "choose a path you may write, or change the permissions",
    errno.EPERM: "choose a path you may write, or change the permissions",
    errno.ENOSPC: "free space on that disk or choose a folder on another one",
    errno.EDQUOT: "free space within your quota or choose a folder on another disk",
    errno.EROFS: "the file system is read-only; choose a folder on a writable one",
    errno.EISDIR: "it is a folder; name a file (inside it, for example)",
    errno.ENOTDIR: "a part of the path is a file, not a folder; choose another path",
    errno.EEXIST: "something is already there; move it away or choose another path",
    errno.ENOENT: "it does not exist; check the path",
}


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: the path, the system's reason and the fix."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return f"{reason}; check the paths the command was given"
    path = str(exc.filename)
    if exc.filename2 is not None:
        path += f" -> {exc.filename2}"
    fix = _OS_ERROR_FIXES.get(exc.errno or 0, "check the path")
    return f"cannot read or write {path}: {reason}; {fix}"
