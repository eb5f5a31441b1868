"""The library's verbs: what every ``hypermaml`` command does, callable from Python.

```python
import hypermaml

score = hypermaml.evaluate_checkpoint("checkpoints/cross_char_1s_hypermaml")  # 600 test tasks
print(score.describe())                  # hypermaml on cross_char/test 5-way 1-shot: 82.66 ± ...

ckpt = hypermaml.load("checkpoints/cross_char_1s_hypermaml")    # the method, config, metadata
hypermaml.train("omniglot_5w1s_hypermaml", "runs/hm")             # a shipped config, by name
```

Both kinds of checkpoint (few-shot methods of ``hypermaml train``, classifiers of
``hypermaml classify``) go through the same ``load`` and ``evaluate_checkpoint``; ``train``
takes either kind of config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .checkpoint import Kind, checkpoint_kind, kind, read_meta
from .classify import (
    ClassifierCheckpoint,
    ClassifierScore,
    ClassifyConfig,
    ClassifyResult,
    ExportReport,
    export_checkpoint,
    load_classifier,
    score_classifier,
    train_classifier,
)
from .config import ExperimentConfig, apply_overrides, read_raw
from .data import CheckReport, PrepareReport, TaskShape, check, load_split, prepare
from .data.folder import FolderSpec
from .engine.device import pick_device
from .engine.distributed import current_world, world_device
from .engine.precision import Precision
from .errors import ConfigError
from .evaluation import FewShotScore, evaluate
from .inference import FewShotModel
from .inference.onnx_check import OnnxCheck, check_adapter
from .inference.onnx_export import export_adapter
from .inference.predict import PredictReport, predict_files, support_folder
from .methods import FewShotCheckpoint, load_method
from .migrate import upgrade as _upgrade
from .models.config import NetworkConfig
from .models.feat import FeatImport, write_feat_checkpoint
from .runs import run_checkpoint
from .runs.ledger import record_evaluation
from .serve.app import serve as run_server
from .serve.load import LoadReport, run_load
from .training import TrainResult
from .training import train as meta_train

Checkpoint = FewShotModel | ClassifierCheckpoint
Config = ExperimentConfig | ClassifyConfig
_CONFIG_CLASSES: dict[Kind, type] = {"few_shot": ExperimentConfig, "classifier": ClassifyConfig}
_DEVICE_FIELD: dict[Kind, str] = {"few_shot": "train.device", "classifier": "run.device"}


def load(path: str | Path, device: str | torch.device | None = "cpu") -> Checkpoint:
    """The checkpoint at ``path`` (a checkpoint folder, a run folder: its ``best`` or
    ``final``, or a registered name: ``hypermaml models``), rebuilt from its stored config with
    its weights: a ``FewShotModel`` (``.method``, ``.adapt(images, labels)``) or a
    ``ClassifierCheckpoint`` (``.network``); both have ``.model``, ``.config``, ``.meta``,
    ``.path`` and ``.kind``."""
    target = pick_device(None if device is None else str(device))
    if checkpoint_kind(path) == "classifier":
        return load_classifier(path, target)
    return FewShotModel.of(load_method(path, target))


def predict(
    checkpoint: str | Path,
    support: str | Path,
    queries: list[str | Path],
    top_k: int = 3,
    batch_size: int = 64,
    device: str | None = "cpu",
) -> PredictReport:
    """``hypermaml predict``: the few-shot checkpoint adapted to the folder ``support``
    (``DIR/<class>/<images>``), then each query file (or folder of them) classified."""
    ckpt = load(checkpoint, device)
    if not isinstance(ckpt, FewShotCheckpoint):
        raise ConfigError(f"{checkpoint} is a classifier of fixed classes (hypermaml classify); "
                          f"predict needs a few-shot checkpoint (hypermaml train)")  # fmt: skip
    images, labels = support_folder(support)
    task = ckpt.adapt(images, labels)
    return predict_files(task, list(queries), str(checkpoint), top_k, batch_size)


def export_onnx(
    checkpoint: str | Path,
    out: str | Path,
    statistics: str = "support",
    n_way: int | None = None,
    support: str | Path | None = None,
) -> Path:
    """``hypermaml export-onnx``: the checkpoint's whole adaptation as one ONNX graph (HyperMAML,
    ProtoNet), or, given a ``support`` folder (``DIR/<class>/<images>``), the classifier adapted
    to it (every method, MAML included); ``inference/onnx_export.py``."""
    ckpt = load(checkpoint, "cpu")
    if not isinstance(ckpt, FewShotModel):
        raise ConfigError(f"{checkpoint} is a classifier (hypermaml classify); export it with "
                          f"hypermaml export")  # fmt: skip
    if support is None:
        return export_adapter(ckpt, out, statistics, n_way)  # type: ignore[arg-type]
    images, labels = support_folder(support)
    return ckpt.adapt(images, labels).export_onnx(out, statistics)  # type: ignore[arg-type]


def check_onnx(checkpoint: str | Path, path: str | Path, statistics: str = "support",
               data_dir: str | Path | None = None, tasks: int = 100,
               threads: int = 1) -> OnnxCheck:  # fmt: skip
    """The adapter at ``path`` against PyTorch on real test tasks, and both timed
    (``inference/onnx_check.py``)."""
    ckpt = load(checkpoint, "cpu")
    return check_adapter(ckpt, path, statistics, data_dir, tasks, threads=threads)  # type: ignore[arg-type]


def serve(checkpoint: str | Path, host: str = "127.0.0.1", port: int = 8000,
          device: str | None = "cpu") -> None:  # fmt: skip
    """``hypermaml serve``: the local page to try the few-shot checkpoint (``serve/app.py``)."""
    ckpt = load(checkpoint, device)
    if not isinstance(ckpt, FewShotModel):
        raise ConfigError(f"{checkpoint} is a classifier of fixed classes; serve needs a few-shot "
                          f"checkpoint")  # fmt: skip
    run_server(ckpt, Path(str(checkpoint)).name, host, port)


def load_test(url: str, clients: int = 20, requests: int = 25,
              malformed_every: int = 5) -> LoadReport:  # fmt: skip
    """``hypermaml load-test``: a bounded load test of a local server (``serve/load.py``)."""
    return run_load(url, clients, requests, malformed_every)


def evaluate_checkpoint(
    path: str | Path,
    split: str | None = None,
    n_way: int | None = None,
    n_shot: int | None = None,
    n_query: int | None = None,
    tasks: int | None = None,
    seed: int | None = None,
    dataset: str | None = None,
    data_dir: str | Path | None = None,
    device: str | None = None,
    precision: str = "fp32",
) -> FewShotScore | ClassifierScore:
    """Score the checkpoint at ``path`` as ``hypermaml eval`` does.

    A few-shot checkpoint: mean accuracy ± 95% interval over ``tasks`` (600) tasks of ``split``
    (test) drawn from ``seed`` (0; the same tasks for every method); the dataset, N, K and Q
    default to its own. A classifier: its accuracy on its test images (held-out images of the
    training classes for a pre-trained encoder); it takes none of the task options. Returns a
    score with ``.accuracy``, ``.to_dict()`` and ``.describe()``. A checkpoint inside a run
    folder (``RUN/best``) records the score in ``RUN/evaluations.jsonl`` (``runs.ledger``).
    ``precision``: the arithmetic of the forward passes (``fp32``, ``bf16``, ``fp16``).
    Launched by torchrun, the processes share the tasks (the same result; the main one
    records it)."""
    given = {"--dataset": dataset, "--split": split, "--n-way": n_way, "--n-shot": n_shot,
             "--n-query": n_query, "--tasks": tasks, "--seed": seed}  # fmt: skip
    if checkpoint_kind(path) == "classifier":
        if extra := [flag for flag, value in given.items() if value is not None]:
            raise ConfigError(
                f"{path} is a classifier, scored on all its test images; {', '.join(extra)} "
                f"apply to few-shot checkpoints only: leave them out"
            )
        classifier_score = score_classifier(path, data_dir, pick_device(device))
        record_evaluation(path, {"split": "test", **classifier_score.to_dict()})
        return classifier_score
    for flag in ("--n-way", "--n-shot", "--n-query", "--tasks"):
        if given[flag] is not None and given[flag] < 1:
            raise ConfigError(f"{flag} {given[flag]} is out of range; give 1 or more")
    world = current_world()
    ckpt = load_method(path, pick_device(world_device(device, world)))
    dc = ckpt.config.data
    shape = TaskShape(dc.n_way if n_way is None else n_way, dc.n_shot if n_shot is None else n_shot,
                      dc.n_query_test if n_query is None else n_query)  # fmt: skip
    dataset = dc.dataset if dataset is None else dataset
    split = "test" if split is None else split
    tasks, seed = 600 if tasks is None else tasks, 0 if seed is None else seed
    options = dc.load_options() if dataset == dc.dataset else {}  # another dataset: its own places
    data = load_split(dataset, split, data_dir, **options)
    device_used = next(ckpt.method.parameters()).device
    result = evaluate(ckpt.method, data, shape, tasks, seed, world=world,
                      precision=Precision(precision, device_used))  # fmt: skip
    score = FewShotScore.of(result, ckpt, dataset, split, shape, seed, precision)
    if world.is_main:
        record_evaluation(path, score.to_dict())  # in RUN/evaluations.jsonl, for the ledger
    return score


def config_kind(raw: dict[str, Any]) -> Kind:
    """Whether a raw config describes a classifier run (``optim``, ``swa`` or ``run`` sections,
    a ``model.arch``) or a few-shot one."""
    if {"optim", "swa", "run"} & set(raw) or "arch" in (raw.get("model") or {}):
        return "classifier"
    return "few_shot"


def load_run_config(
    config: str | Path | None = None,
    overrides: list[str] | None = None,
    resume_from: str | Path | None = None,
    device: str | None = None,
) -> Config:
    """The typed config of a run: the YAML file or shipped config ``config`` (either kind), or,
    when it is None, the config stored in ``resume_from``'s ``last`` checkpoint; ``overrides``
    (``key.sub=value``) and ``device`` applied on top."""
    if config is not None:
        raw = read_raw(config)
        run_kind = config_kind(raw)
    elif resume_from is not None:
        checkpoint = run_checkpoint(resume_from)
        if checkpoint is None:
            raise ConfigError(
                f"{resume_from} holds no run to resume (no complete last/ checkpoint); give a "
                f"CONFIG to start one there"
            )
        _, meta = read_meta(checkpoint)
        raw, run_kind = meta["config"], kind(meta)
    else:
        raise ConfigError("give a CONFIG file or shipped config name, or --resume an existing run")
    overrides = list(overrides or [])
    if device is not None:
        overrides.append(f"{_DEVICE_FIELD[run_kind]}={device}")
    return _CONFIG_CLASSES[run_kind].from_dict(apply_overrides(raw, overrides))


def train(
    config: Config | str | Path,
    out: str | Path,
    data_dir: str | Path | None = None,
    resume: bool | None = False,
    init: str | Path | None = None,
    progress: bool = True,
    force: bool = False,
) -> TrainResult | ClassifyResult:
    """Train the run ``config`` describes into the run folder ``out``: meta-training for a
    few-shot config (``init``: weights to start from), supervised training for a classifier
    config. ``config`` is a typed config, a YAML file or a shipped config's name.
    ``resume=True`` continues the run in ``out`` exactly where it stopped (there must be one),
    ``resume=None`` continues it if there is one and starts it otherwise. ``force`` writes into
    an existing folder hypermaml did not create (nothing in it is overwritten)."""
    if not isinstance(config, ExperimentConfig | ClassifyConfig):
        config = load_run_config(config)
    if isinstance(config, ClassifyConfig):
        if init is not None:
            raise ConfigError("init starts a few-shot run; a classifier run starts from scratch")
        return train_classifier(config, out, data_dir, resume=resume, progress=progress,
                                force=force)  # fmt: skip
    return meta_train(config, out, data_dir, resume=resume, progress=progress, init=init,
                      force=force)  # fmt: skip


def export(
    path: str | Path, out: str | Path, data_dir: str | Path | None = None, force: bool = False
) -> ExportReport:
    """Write the HyperResNet classifier at ``path`` as the plain network computing the same
    function (``out``, a new folder; ``force`` replaces an earlier export there), checked on
    test images."""
    return export_checkpoint(path, out, data_dir, force=force)


def upgrade(path: str | Path) -> list[str]:
    """Migrate the checkpoint folder ``path``, or every checkpoint of the run folder ``path``,
    to the current format (``hypermaml upgrade``); one line per checkpoint saying what was done."""
    return _upgrade(path)


def import_feat_weights(
    file: str | Path, arch: str, out: str | Path, force: bool = False
) -> FeatImport:
    """FEAT's pre-trained mini-ImageNet encoder (``con-pre.pth``, ``Res12-pre.pth``) as a
    classifier checkpoint at ``out``, for ``train --init`` (``hypermaml import-weights``)."""
    cfg = ClassifyConfig(model=NetworkConfig(arch=arch))
    cfg.data.dataset = "mini_imagenet"
    return write_feat_checkpoint(file, arch, out, cfg, force)


def _folder(name: str, root: str | Path | None, size: int) -> FolderSpec | None:
    if name != "folder":
        return None
    if root is None:
        raise ConfigError("the folder dataset needs --from ROOT: the folder of class folders")
    return FolderSpec(root, size=size)


def prepare_data(
    name: str,
    data_dir: str | Path | None = None,
    source: str | Path | None = None,
    skip_bad_images: bool = False,
    size: int = 84,
) -> PrepareReport:
    """Decode dataset ``name`` into its cache ahead of training (``hypermaml data prepare``);
    ``source``: where its images are (for ``folder``: the folder of class folders, read at
    ``size``)."""
    folder = _folder(name, source, size)
    return prepare(name, data_dir, None if folder else source, folder=folder,
                   skip_bad_images=skip_bad_images, progress=True)  # fmt: skip


def check_data(
    name: str,
    data_dir: str | Path | None = None,
    source: str | Path | None = None,
    decode: bool = False,
    size: int = 84,
) -> CheckReport:
    """Classes, images per class, problems and cache state of dataset ``name``
    (``hypermaml data check``); ``decode`` also decodes every image to find damaged ones."""
    folder = _folder(name, source, size)
    return check(name, data_dir, None if folder else source, folder=folder, decode=decode)
