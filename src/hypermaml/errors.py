"""The errors hypermaml raises on bad input: each names the problem and the fix.

The command line prints them as one line (``hypermaml CMD: error: ...``) and exits with status 2;
a library caller can catch ``HypermamlError`` for all of them.
"""

from __future__ import annotations


class HypermamlError(Exception):
    """Base of every error raised on bad input (a file, a config, an argument)."""


class ConfigError(HypermamlError, ValueError):
    """A config file or override names an unknown key or a value of the wrong type."""


class DataError(HypermamlError, RuntimeError):
    """A data file is missing, corrupt, or a request cannot be served by a dataset."""


class CheckpointError(HypermamlError, RuntimeError):
    """A path is not a readable hypermaml checkpoint, or does not fit the model asked for."""


class TrainingError(HypermamlError, RuntimeError):
    """Training cannot go on (a non-finite loss, a run folder in the way)."""


class MissingExtraError(HypermamlError, ImportError):
    """A command needs an optional dependency that is not installed."""
