"""Reference models by name: ``hypermaml.load("cross_char_1s_hypermaml")``, and every command
that takes a checkpoint, accept a registered name as well as a folder.

``registry.json`` (shipped with the package) lists each reference model: its task, its
documented test figure, and the sha256 of its two files. A name resolves, in order, to:

1. the folder ``checkpoints/NAME`` of the current directory or of the source checkout the
   package runs from, when its files match the registry;
2. the model cache, ``$HYPERMAML_MODELS`` else ``~/.cache/hypermaml/models``, ``NAME/``;
3. a download of ``NAME/checkpoint.json`` and ``NAME/model.safetensors`` from the release URL
   (``$HYPERMAML_MODELS_URL``, else the registry's ``release_url``) into the cache, each file
   verified by its sha256 before it is put in place.

No public release hosts the weights yet (``release_url`` is null): a source checkout has them
under ``checkpoints/``, and a mirror (a web folder or ``file://`` path) is named with
``$HYPERMAML_MODELS_URL``. ``python -m hypermaml.checkpoint.registry checkpoints`` rewrites the
registry from the checkpoint folders and their ``test_seed0.json``.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..download import RemoteFile, fetch, file_digest
from ..errors import CheckpointError, DataError
from .names import META, WEIGHTS

REGISTRY = files("hypermaml.checkpoint") / "registry.json"
FILES = (META, WEIGHTS)
SOURCE_CHECKOUT = Path(__file__).resolve().parents[3]
"""The repository root when the package runs from a source checkout (``src/hypermaml/...``)."""


def registry() -> dict[str, Any]:
    """``{"release_url": ..., "models": {name: entry}}`` as shipped."""
    return json.loads(REGISTRY.read_text())


def models_dir() -> Path:
    """Where downloaded reference models are kept."""
    env = os.environ.get("HYPERMAML_MODELS")
    return Path(env).expanduser() if env else Path("~/.cache/hypermaml/models").expanduser()


def is_registered(name: str) -> bool:
    return "/" not in name and name in registry()["models"]


def _matches(folder: Path, entry: dict[str, Any]) -> bool:
    try:
        return all(file_digest(folder / n, "sha256") == entry["sha256"][n] for n in FILES)
    except OSError:
        return False


def resolve(name: str) -> Path:
    """The local folder of the registered model ``name`` (module doc), downloading it when no
    verified copy is found; a CheckpointError says which files to put where when that fails."""
    reg = registry()
    entry = reg["models"][name]
    for root in (Path.cwd() / "checkpoints", SOURCE_CHECKOUT / "checkpoints", models_dir()):
        if _matches(root / name, entry):
            return root / name
    target = models_dir() / name
    base = os.environ.get("HYPERMAML_MODELS_URL") or reg.get("release_url")
    if not base:
        raise CheckpointError(
            f"the reference model {name} is not here: no checkpoints/{name} matching the "
            f"registry, nothing in {target}, and no release URL to download it from. Copy the "
            f"folder checkpoints/{name} of a source checkout to {target}, or set "
            f"$HYPERMAML_MODELS_URL to a folder or URL holding {name}/{META} and {name}/{WEIGHTS}"
        )
    for file in FILES:  # a copy failing its digest is replaced, never used
        path = target / file
        if path.is_file() and file_digest(path, "sha256") != entry["sha256"][file]:
            path.unlink()
        try:
            fetch(RemoteFile(f"{name}/{file}", f"{base.rstrip('/')}/{name}/{file}",
                             f"sha256:{entry['sha256'][file]}"), models_dir())  # fmt: skip
        except DataError as exc:
            raise CheckpointError(
                f"the reference model {name} could not be fetched: {exc}"
            ) from exc
    return target


def entry_for(folder: Path) -> dict[str, Any]:
    """The registry entry of the checkpoint folder ``folder`` (with its ``test_seed0.json``)."""
    meta = json.loads((folder / META).read_text())
    score = json.loads((folder / "test_seed0.json").read_text())
    data = meta["config"]["data"]
    return {
        "method": meta["method"], "dataset": score.get("dataset", data["dataset"]),
        "n_way": score["n_way"], "n_shot": score["n_shot"],
        "accuracy": round(score["accuracy"], 2), "ci95": round(score["ci95"], 2),
        "test_tasks": score["n_tasks"],
        "sha256": {n: file_digest(folder / n, "sha256") for n in FILES},
    }  # fmt: skip


def rebuild(checkpoints: Path, names: list[str] | None = None) -> dict[str, Any]:
    """The registry of the few-shot folders under ``checkpoints`` that have a test score."""
    folders = sorted(p.parent for p in checkpoints.glob(f"*/{META}")
                     if (p.parent / "test_seed0.json").is_file())  # fmt: skip
    models = {f.name: entry_for(f) for f in folders if names is None or f.name in names}
    return {"release_url": registry().get("release_url"), "models": models}


if __name__ == "__main__":  # python -m hypermaml.checkpoint.registry CHECKPOINTS
    new = rebuild(Path(sys.argv[1] if len(sys.argv) > 1 else "checkpoints"))
    Path(str(REGISTRY)).write_text(json.dumps(new, indent=1, sort_keys=True) + "\n")
    print(f"{len(new['models'])} models written to {REGISTRY}")
