"""Commands that train, score and export models: train, classify, eval, export, configs."""

from __future__ import annotations

import argparse
from typing import Any

from .. import api
from ..classify import ClassifyConfig
from ..config import shipped_configs
from ..errors import ConfigError
from .args import (
    add_data_args,
    add_json_arg,
    add_precision_arg,
    add_tasks_args,
    join_launch,
    positive_int,
    save_json,
)


def cmd_train(args: argparse.Namespace) -> int:
    resume = True if args.resume else (None if args.resume_if_exists else False)
    resume_from = args.out if resume is not False and args.config is None else None
    cfg = api.load_run_config(args.config, args.set, resume_from, args.device)
    if args.command == "classify" and not isinstance(cfg, ClassifyConfig):
        raise ConfigError(
            f"{args.config or args.out} is a few-shot run, not a classifier; "
            f"use hypermaml train{' --resume' if args.resume else ''} ... --out {args.out}"
        )
    join_launch(cfg.run.device if isinstance(cfg, ClassifyConfig) else cfg.train.device)
    result = api.train(cfg, args.out, args.data_dir, resume=resume, init=args.init,
                       progress=not args.quiet, force=args.force)  # fmt: skip
    print(result.describe(args.out))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    join_launch(args.device)
    score = api.evaluate_checkpoint(
        args.checkpoint, args.split, args.n_way, args.n_shot, args.n_query, args.tasks,
        args.seed, args.dataset, args.data_dir, args.device, args.precision,
    )  # fmt: skip
    print(score.describe())
    save_json(args, score.to_dict())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    report = api.export(args.checkpoint, args.out, args.data_dir, force=args.force)
    print(
        f"{args.checkpoint} -> {args.out}: a plain {report.arch} with {report.test_params:,} "
        f"parameters (trained with {report.train_params:,}); largest logit difference on "
        f"{report.compared} test images {report.max_abs_diff:.2e}"
    )
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    print("\n".join(line for path in args.paths for line in api.upgrade(path)))
    return 0


def cmd_import_weights(args: argparse.Namespace) -> int:
    r = api.import_feat_weights(args.file, args.arch, args.out, force=args.force)
    print(f"{args.file} -> {args.out}: FEAT {r.arch}, {r.tensors} tensors; dropped "
          f"{r.dropped}, folded {len(r.folded)} conv biases")  # fmt: skip
    return 0


def cmd_configs(args: argparse.Namespace) -> int:
    configs = shipped_configs()
    width = max(map(len, configs))
    for name, description in configs.items():
        print(f"{name:<{width}}  {description}")
    return 0


def _run_parser(sub: Any, name: str, help: str, config_help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help)
    p.add_argument("config", nargs="?", help=config_help)
    p.add_argument("--out", required=True, help="run folder: last/, best/ or final/, metrics.csv")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true", help="continue the run in --out")
    start.add_argument("--resume-if-exists", action="store_true", help="resume, or start anew")
    p.add_argument("--force", action="store_true", help="use a folder hypermaml did not create "
                   "(nothing in it is deleted or overwritten)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_data_args(p)
    p.set_defaults(func=cmd_train, init=None)
    return p


def register(sub: Any) -> None:
    p = _run_parser(
        sub, "train", "train from a config: meta-training (few-shot) or a classifier",
        "YAML file or shipped config name (hypermaml configs lists them)",
    )  # fmt: skip
    p.add_argument(
        "--init",
        help="start from the weights of this checkpoint (same method), or from the encoder of a "
        "classifier pre-trained with hypermaml classify",
    )
    _run_parser(
        sub, "classify", "train a plain or hyper ResNet as an image classifier (HyperResNets)",
        "classifier config (classify_*.yaml or its name)",
    )  # fmt: skip

    p = sub.add_parser("eval", help="score a checkpoint: few-shot on tasks drawn from a seed, "
                       "a classifier on its test images")  # fmt: skip
    p.add_argument("checkpoint", help="checkpoint folder (RUN/best, RUN/final, checkpoints/NAME)")
    p.add_argument("--dataset", help="default: the checkpoint's own")
    p.add_argument("--n-way", type=positive_int)
    p.add_argument("--n-shot", type=positive_int)
    p.add_argument("--n-query", type=positive_int, help="query images per class (default 15)")
    add_tasks_args(p)
    add_precision_arg(p)
    add_json_arg(p, "the result")
    add_data_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="write a trained HyperResNet as the plain ResNet it equals")
    p.add_argument("checkpoint", help="a classifier checkpoint (RUN/final)")
    p.add_argument("--out", required=True, help="new folder for the plain network's checkpoint")
    p.add_argument("--force", action="store_true", help="replace an earlier export in --out")
    add_data_args(p, device=False)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("upgrade", help="migrate checkpoints of an older format, explicitly")
    p.add_argument("paths", nargs="+", help="checkpoint or run folders")
    p.set_defaults(func=cmd_upgrade)

    p = sub.add_parser("import-weights", help="FEAT's pre-trained mini-ImageNet encoder as a "
                       "classifier checkpoint for train --init")  # fmt: skip
    p.add_argument("source", choices=["feat"])
    p.add_argument("file", help="con-pre.pth or Res12-pre.pth")
    p.add_argument("--arch", required=True, choices=["conv4", "conv4pool", "resnet12",
                                                     "resnet12_dropblock"])  # fmt: skip
    p.add_argument("--out", required=True, help="new folder for the checkpoint")
    p.add_argument("--force", action="store_true", help="replace an earlier import in --out")
    p.set_defaults(func=cmd_import_weights)

    p = sub.add_parser("configs", help="list the shipped configs (one per experiment)")
    p.set_defaults(func=cmd_configs)
