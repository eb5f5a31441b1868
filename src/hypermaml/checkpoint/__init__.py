"""The on-disk format of every hypermaml artefact (``format``), and training states stored as
tensors plus JSON, never as pickles (``state``)."""

from .format import (
    CLASSIFIER,
    FORMAT,
    FORMAT_VERSION,
    META,
    WEIGHTS,
    Kind,
    check_replaceable,
    checkpoint_kind,
    init_lineage,
    is_complete,
    kind,
    latest_complete,
    leftovers,
    library_versions,
    load_train_state,
    load_weights_into,
    read_meta,
    read_weights,
    stored_config,
    stored_format,
    write_checkpoint,
)

__all__ = [
    "CLASSIFIER", "FORMAT", "FORMAT_VERSION", "META", "WEIGHTS", "Kind", "check_replaceable",
    "checkpoint_kind",
    "init_lineage", "is_complete", "kind", "latest_complete", "leftovers", "library_versions",
    "load_train_state", "load_weights_into", "read_meta", "read_weights", "stored_config",
    "stored_format",
    "write_checkpoint",
]  # fmt: skip
