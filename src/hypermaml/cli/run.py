"""Commands that train, score and export models: train, classify, eval, export, configs."""

from __future__ import annotations

import argparse
from typing import Any

from .. import api
from ..classify import ClassifyConfig
from ..config import shipped_configs
from ..errors import ConfigError
from .args import add_data_args, add_json_arg, add_tasks_args, save_json


def cmd_train(args: argparse.Namespace) -> int:
    resume_from = args.out if args.resume else None
    cfg = api.load_run_config(args.config, args.set, resume_from, args.device)
    if args.command == "classify" and not isinstance(cfg, ClassifyConfig):
        raise ConfigError(
            f"{args.config or args.out} is a few-shot run, not a classifier; "
            f"use hypermaml train{' --resume' if args.resume else ''} ... --out {args.out}"
        )
    result = api.train(cfg, args.out, args.data_dir, resume=args.resume,
                       init=args.init, progress=not args.quiet)  # fmt: skip
    if isinstance(cfg, ClassifyConfig):
        print(
            f"test accuracy {result.test_accuracy:.2f}% ({cfg.model.arch}, hyper "
            f"{cfg.model.hyper}{', SWA' if cfg.swa.start_epoch is not None else ''}); "
            f"{result.train_params:,} trained parameters, {result.test_params:,} after export; "
            f"{result.epochs_run} epochs in {result.seconds:.0f} s; the network is in "
            f"{args.out}/final"
        )
        return 0
    resumed = ""
    if result.total_epochs != result.epochs_run:
        resumed = f" (the whole run: {result.total_epochs} epochs in {result.total_seconds:.0f} s)"
    print(
        f"best validation accuracy {result.best_val_accuracy:.2f}% at epoch {result.best_epoch}; "
        f"{result.epochs_run} epochs in {result.seconds:.0f} s{resumed}; checkpoints in "
        f"{args.out}/best and {args.out}/last"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    score = api.evaluate_checkpoint(
        args.checkpoint, args.split, args.n_way, args.n_shot, args.n_query, args.tasks,
        args.seed, args.dataset, args.data_dir, args.device,
    )  # fmt: skip
    print(score.describe())
    save_json(args, score.to_dict())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    report = api.export(args.checkpoint, args.out, args.data_dir)
    print(
        f"{args.checkpoint} -> {args.out}: a plain {report.arch} with {report.test_params:,} "
        f"parameters (trained with {report.train_params:,}); largest logit difference on "
        f"{report.compared} test images {report.max_abs_diff:.2e}"
    )
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
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
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
    p.add_argument("--n-way", type=int)
    p.add_argument("--n-shot", type=int)
    p.add_argument("--n-query", type=int, help="query images per class (default 15)")
    add_tasks_args(p)
    add_json_arg(p, "the result")
    add_data_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("export", help="write a trained HyperResNet as the plain ResNet it equals")
    p.add_argument("checkpoint", help="a classifier checkpoint (RUN/final)")
    p.add_argument("--out", required=True, help="folder for the plain network's checkpoint")
    add_data_args(p, device=False)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("configs", help="list the shipped configs (one per experiment)")
    p.set_defaults(func=cmd_configs)
