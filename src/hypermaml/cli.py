"""The ``hypermaml`` command line: argument parsing only; every command calls into the library."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .config import ConfigError


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        help="folder with the data files (default: $HYPERMAML_DATA, else ~/.cache/hypermaml)",
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")


def _run_config(args: argparse.Namespace, classifier: bool):
    """The config of ``train``/``classify``: the CONFIG file, or the one stored in ``--out``'s
    last checkpoint when resuming without one; ``--set`` and ``--device`` applied on top."""
    from .classify_config import ClassifyConfig
    from .config import ExperimentConfig, apply_overrides, load_typed
    from .training.checkpoint import CLASSIFIER, read_meta

    cls = ClassifyConfig if classifier else ExperimentConfig
    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"{'run' if classifier else 'train'}.device={args.device}")
    if args.config is not None:
        return load_typed(cls, args.config, overrides)
    if not args.resume:
        raise ConfigError("give a CONFIG file (see configs/), or --resume an existing --out run")
    _, meta = read_meta(Path(args.out) / "last")
    if (meta["method"] == CLASSIFIER) != classifier:
        command = "train" if classifier else "classify"
        raise ConfigError(
            f"{args.out} is a {meta['method']} run, not one of this command; continue it with "
            f"hypermaml {command} --resume --out {args.out}"
        )
    return cls.from_dict(apply_overrides(meta["config"], overrides))


def cmd_train(args: argparse.Namespace) -> int:
    from .training import train

    cfg = _run_config(args, classifier=False)
    result = train(
        cfg, args.out, args.data_dir, resume=args.resume, progress=not args.quiet, init=args.init
    )
    resumed = (
        f" (the whole run: {result.total_epochs} epochs in {result.total_seconds:.0f} s)"
        if result.total_epochs != result.epochs_run
        else ""
    )
    print(
        f"best validation accuracy {result.best_val_accuracy:.2f}% at epoch {result.best_epoch}; "
        f"{result.epochs_run} epochs in {result.seconds:.0f} s{resumed}; checkpoints in "
        f"{args.out}/best and {args.out}/last"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .data import load_split
    from .evaluation import evaluate
    from .training import load_checkpoint, pick_device
    from .training.checkpoint import CLASSIFIER, read_meta

    if read_meta(args.checkpoint)[1]["method"] == CLASSIFIER:
        return _eval_classifier(args)
    ckpt = load_checkpoint(args.checkpoint, pick_device(args.device or "auto"))
    data_cfg = ckpt.config.data
    dataset = args.dataset or data_cfg.dataset
    n_way = args.n_way or data_cfg.n_way
    n_shot = args.n_shot or data_cfg.n_shot
    n_query = args.n_query or data_cfg.n_query_test
    data = load_split(dataset, args.split, args.data_dir)
    result = evaluate(ckpt.method, data, n_way, n_shot, n_query, args.tasks, args.seed)
    report = {
        **result.summary(),
        "method": ckpt.meta["method"],
        "dataset": dataset,
        "split": args.split,
        "n_way": n_way,
        "n_shot": n_shot,
        "n_query": n_query,
        "seed": args.seed,
        "bn": ckpt.config.model.bn,
        "checkpoint": str(ckpt.path),
        "device": str(next(ckpt.method.parameters()).device),
    }
    print(
        f"{report['method']} on {dataset}/{args.split} {n_way}-way {n_shot}-shot: "
        f"{result.accuracy:.2f} ± {result.ci95:.2f}% over {result.n_tasks} tasks "
        f"(seed {args.seed}), {1000 * result.seconds_per_task:.1f} ms per task"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from .training.classify import train_classifier

    cfg = _run_config(args, classifier=True)
    result = train_classifier(cfg, args.out, args.data_dir, resume=args.resume,
                              progress=not args.quiet)  # fmt: skip
    print(
        f"test accuracy {result.test_accuracy:.2f}% ({cfg.model.arch}, hyper {cfg.model.hyper}"
        f"{', SWA' if cfg.swa.start_epoch is not None else ''}); {result.train_params:,} "
        f"trained parameters, {result.test_params:,} after export; {result.epochs_run} epochs "
        f"in {result.seconds:.0f} s; the network is in {args.out}/final"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .training.classifier_io import export_checkpoint

    report = export_checkpoint(args.checkpoint, args.out, args.data_dir)
    print(
        f"{args.checkpoint} -> {args.out}: a plain {report['arch']} with "
        f"{report['test_params']:,} parameters (trained with {report['train_params']:,}); "
        f"largest logit difference on {report['compared']} test images "
        f"{report['max_abs_diff']:.2e}"
    )
    return 0


def _eval_classifier(args: argparse.Namespace) -> int:
    """``hypermaml eval`` of a ``hypermaml classify`` checkpoint: its test-set accuracy."""
    from .training import pick_device
    from .training.classifier_io import score_classifier

    report = score_classifier(args.checkpoint, args.data_dir, pick_device(args.device or "auto"))
    where = f"{report['dataset']}/test"
    if report["dataset"] in ("omniglot", "cross_char"):  # pre-training data
        where = f"held-out images of the {report['dataset']} training classes"
    print(
        f"{report['arch']} (hyper {report['hyper']}) on {where}: "
        f"{report['accuracy']:.2f}% of {report['n_images']:,} images"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    """Trained and exported parameter counts of plain and hyper networks (HyperResNets tables)."""
    import torch

    from .models.export import count_parameters
    from .models.resnets import build_classifier

    print(f"{'network':<30} {'trained':>12} {'after export':>13}")
    for arch in args.archs.split(","):
        for hyper in args.hyper.split(","):
            seeds = [None, 0] if args.compressed and hyper == "stage" else [None]
            for seed in seeds:
                with torch.device("meta"):  # shapes only, nothing allocated
                    net = build_classifier(arch, args.channels, args.classes, hyper,
                                           frozen_seed=seed)  # fmt: skip
                train, test = count_parameters(net)
                name = f"{arch} ({hyper}{', compressed' if seed is not None else ''})"
                print(f"{name:<30} {train:>12,} {test:>13,}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "adapt":
        return _bench_adapt(args)
    from .experiments.speed import (
        BenchSettings,
        default_cases,
        format_ratios,
        format_table,
        ratios,
        report,
        run_bench,
    )

    settings = BenchSettings(
        dataset=args.dataset, n_way=args.n_way, n_shot=args.n_shot, n_query=args.n_query,
        meta_batch=args.meta_batch, train_episodes=args.train_episodes,
        eval_tasks=args.eval_tasks, eval_batch=args.eval_batch, device=args.device or "auto",
        threads=args.threads, task_parallel=not args.no_task_parallel, n_classes=args.n_classes,
        image_size=args.image_size, phases=tuple(args.phases.split(",")),
    )  # fmt: skip
    steps = tuple(int(k) for k in args.maml_steps.split(",") if k)
    cases = [c for c in default_cases(steps, args.maml_batching) if _wanted(c.name, args.methods)]
    if not cases:
        raise ValueError(f"--methods {args.methods!r} selects no method")
    rows, reference = run_bench(cases, settings, isolate=not args.in_process)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report(rows, settings, reference), indent=2))
    workers = rows[0].extra.get("task_workers", 1)
    gemm = " / ".join(f"{g:.0f}" for g in reference)
    print(
        f"\n{format_table(rows)}\n({rows[0].device}, {rows[0].threads} threads, "
        f"{workers} task worker{'s' if workers > 1 else ''}; reference float32 GEMM "
        f"{gemm} GFLOP/s before / after; floor: the convolutions' FLOPs at that rate)"
    )
    if summary := format_ratios(ratios(rows)):
        print(summary)
    return 0


def _bench_adapt(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    import torch

    from .data import load_split
    from .experiments.adapt_time import adapt_benchmark, plot_adapt
    from .experiments.speed import environment
    from .training import load_checkpoint, pick_device

    if not (args.maml or args.hypermaml):
        raise ValueError("bench adapt needs --maml CHECKPOINT and/or --hypermaml CHECKPOINT")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device or "auto")
    models, data_cfg = {}, None
    for name, path in (("maml", args.maml), ("hypermaml", args.hypermaml)):
        if path:
            ckpt = load_checkpoint(path, device, expect_method=name)
            models[name] = ckpt.method
            if data_cfg is not None and (data_cfg.dataset, data_cfg.n_way, data_cfg.n_shot) != (
                ckpt.config.data.dataset,
                ckpt.config.data.n_way,
                ckpt.config.data.n_shot,
            ):
                raise ValueError("--maml and --hypermaml were trained on different task settings")
            data_cfg = ckpt.config.data
    data = load_split(data_cfg.dataset, args.split, args.data_dir)
    steps = tuple(int(k) for k in args.steps.split(",") if k)
    rows = adapt_benchmark(
        models.get("maml"), models.get("hypermaml"), data, data_cfg.n_way, data_cfg.n_shot,
        data_cfg.n_query_test, steps, args.tasks, args.seed, args.repeats,
    )  # fmt: skip
    threads = torch.get_num_threads()
    print(f"({args.tasks} {data_cfg.dataset} {args.split} tasks of seed {args.seed}, {device}, "
          f"{threads} threads; the paper: Omniglot -> EMNIST, RTX 2080)")  # fmt: skip
    if args.plot:
        plot_adapt(rows, args.plot, f"{data_cfg.dataset} {data_cfg.n_way}-way "
                   f"{data_cfg.n_shot}-shot, {args.tasks} tasks, {device}")  # fmt: skip
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        report = {"rows": [asdict(r) for r in rows], "environment": environment(),
                  "dataset": data_cfg.dataset, "split": args.split, "seed": args.seed,
                  "maml": args.maml, "hypermaml": args.hypermaml}  # fmt: skip
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def _wanted(case: str, methods: str | None) -> bool:
    return (
        methods is None
        or case.split(" ")[0] in methods.split(",")
        or (case.split("-")[0] in methods.split(","))
    )


def cmd_analyze_updates(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .data import load_split
    from .experiments.updates import PAPER_TABLE3, update_norms
    from .methods import MAML
    from .training import load_checkpoint, pick_device

    device = pick_device(args.device or "auto")
    reports = []
    print(f"{'checkpoint':<44} {'|delta weight|':>16} {'|delta bias|':>14}  paper (weight / bias)")
    for path in args.checkpoints:
        ckpt = load_checkpoint(path, device)
        if args.maml_steps is not None and isinstance(ckpt.method, MAML):
            ckpt.method.cfg = replace(ckpt.method.cfg, inner_steps_test=args.maml_steps)
        dc = ckpt.config.data
        data = load_split(dc.dataset, args.split, args.data_dir)
        norms = update_norms(
            ckpt.method, data, dc.n_way, dc.n_shot, dc.n_query_test, args.tasks, args.seed
        )
        name = ckpt.meta["method"]
        paper = PAPER_TABLE3.get(name)
        paper_text = "-"
        if paper:
            paper_text = f"{paper[0][0]} ± {paper[0][1]} / {paper[1][0]} ± {paper[1][1]}"
        print(
            f"{str(path):<44} {norms.weight_mean:>8.2f} ± {norms.weight_ci95:<5.2f} "
            f"{norms.bias_mean:>6.2f} ± {norms.bias_ci95:<5.2f}  {paper_text}"
        )
        steps = None
        if isinstance(ckpt.method, MAML):  # the steps adaptation took at test time
            steps = ckpt.method.cfg.inner_steps_test or ckpt.method.cfg.inner_steps
        reports.append({
            **norms.summary(), "method": name, "maml_steps": steps, "checkpoint": str(ckpt.path),
            "dataset": dc.dataset, "split": args.split, "n_way": dc.n_way, "n_shot": dc.n_shot,
            "seed": args.seed,
        })  # fmt: skip
    print(f"({args.tasks} {args.split} tasks of seed {args.seed}; the paper's figures are for "
          f"Omniglot -> EMNIST 5-way 1-shot, MAML with one step)")  # fmt: skip
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(reports, indent=2))
    return 0


def cmd_analyze_curves(args: argparse.Namespace) -> int:
    from .experiments.curves import plot_curves, read_curve

    labels = args.labels.split(",") if args.labels else [None] * len(args.runs)
    if len(labels) != len(args.runs):
        raise ValueError(f"--labels names {len(labels)} runs, but {len(args.runs)} were given")
    curves = [read_curve(run, label) for run, label in zip(args.runs, labels)]
    for c in curves:
        best = max(range(len(c.accuracy)), key=c.accuracy.__getitem__, default=None)
        text = "no validated epoch" if best is None else (
            f"best {c.accuracy[best]:.2f}% at epoch {c.epochs[best]}, last {c.accuracy[-1]:.2f}% "
            f"at epoch {c.epochs[-1]}")  # fmt: skip
        print(f"{c.label}: starts after epoch {c.offset - 1}; {text}" if c.offset
              else f"{c.label}: {text}")  # fmt: skip
    plot_curves(curves, args.out, args.title)
    print(f"figure written to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .experiments.toy2d import run_demo

    run_demo(Path(args.out), seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hypermaml",
        description="Few-shot learning: a hypernetwork, not gradient descent, adapts the model.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="meta-train a method from a YAML config")
    p.add_argument("config", nargs="?", help="YAML config (see configs/)")
    p.add_argument("--out", required=True, help="run folder: best/, last/, metrics.csv, tb/")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--init",
        help="start from the weights of this checkpoint (same method), or from the encoder of a "
        "classifier pre-trained with hypermaml classify",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="score a checkpoint on test tasks drawn from a seed")
    p.add_argument("checkpoint", help="checkpoint folder (RUN/best, RUN/last or checkpoints/NAME)")
    p.add_argument("--dataset", help="default: the checkpoint's own")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--n-way", type=int)
    p.add_argument("--n-shot", type=int)
    p.add_argument("--n-query", type=int, help="query images per class (default 15)")
    p.add_argument("--tasks", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the result as JSON to this file")
    _add_data_args(p)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "bench",
        help="speed: training and test speed of every method, peak memory; adapt: MAML with "
        "k steps against HyperMAML, seconds and accuracy on the same test tasks (Table 4)",
    )
    p.add_argument("what", nargs="?", default="speed", choices=["speed", "adapt"])
    p.add_argument("--methods", help="comma list of hypermaml, maml, maml-K, protonet (all)")
    p.add_argument("--maml-steps", default="1,5", help="MAML inner steps to time (1,5)")
    p.add_argument("--maml-batching", default="auto", choices=["auto", "loop", "vmap", "both"])
    p.add_argument("--dataset", default="omniglot", choices=["omniglot", "cross_char"])
    p.add_argument("--n-way", type=int, default=5)
    p.add_argument("--n-shot", type=int, default=1)
    p.add_argument("--n-query", type=int, default=16, help="training queries per class")
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--train-episodes", type=int, default=200)
    p.add_argument("--eval-tasks", type=int, default=600)
    p.add_argument("--eval-batch", type=int, default=8, help="test tasks per forward")
    p.add_argument("--phases", default="train,eval", help="train, eval or both")
    p.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    p.add_argument(
        "--no-task-parallel", action="store_true",
        help="use the threads inside each operation instead of one task worker per thread",
    )  # fmt: skip
    p.add_argument("--n-classes", type=int, help="classes of the synthetic split")
    p.add_argument("--image-size", type=int, help="image side (default: the dataset's)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda when present)")
    p.add_argument("--in-process", action="store_true", help="no fresh process per phase")
    adapt = p.add_argument_group("bench adapt (trained checkpoints, real test tasks)")
    adapt.add_argument("--maml", help="MAML checkpoint folder")
    adapt.add_argument("--hypermaml", help="HyperMAML checkpoint folder")
    adapt.add_argument("--steps", default="0,1,2,3,4,5,10,25,50,100", help="MAML's test steps")
    adapt.add_argument("--tasks", type=int, default=600)
    adapt.add_argument("--seed", type=int, default=0)
    adapt.add_argument("--split", default="test", choices=["train", "val", "test"])
    adapt.add_argument("--repeats", type=int, default=1, help="timed runs per row")
    adapt.add_argument("--plot", help="draw accuracy against time into this image file")
    adapt.add_argument(
        "--data-dir",
        help="folder with the data files (default: $HYPERMAML_DATA, else ~/.cache/hypermaml)",
    )
    p.add_argument("--json", help="write settings, machine and results as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("analyze", help="analyses of trained checkpoints (the paper's tables)")
    analyses = p.add_subparsers(dest="analysis", required=True)
    p = analyses.add_parser(
        "updates", help="norm of the classifier update per test task (the paper's Table 3)"
    )
    p.add_argument("checkpoints", nargs="+", help="HyperMAML or MAML checkpoint folders")
    p.add_argument(
        "--maml-steps", type=int, help="inner steps for MAML checkpoints (default: their own)"
    )
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--tasks", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results as JSON to this file")
    _add_data_args(p)
    p.set_defaults(func=cmd_analyze_updates)
    p = analyses.add_parser(
        "curves", help="validation accuracy against epoch of runs; a stage started with --init "
        "continues the epochs of the checkpoint it started from"
    )  # fmt: skip
    p.add_argument("runs", nargs="+", help="run folders, or checkpoint folders with metrics.csv")
    p.add_argument("--out", required=True, help="image file to draw into (e.g. curves.png)")
    p.add_argument("--labels", help="comma-separated legend labels, one per run")
    p.add_argument("--title", default="")
    p.set_defaults(func=cmd_analyze_curves)

    p = sub.add_parser(
        "classify", help="train a plain or hyper ResNet as an image classifier (HyperResNets)"
    )
    p.add_argument("config", nargs="?", help="YAML config (see configs/classify_*.yaml)")
    p.add_argument("--out", required=True, help="run folder: last/, final/, metrics.csv, tb/")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config field")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_data_args(p)
    p.set_defaults(func=cmd_classify)

    p = sub.add_parser(
        "export", help="write a trained HyperResNet as the plain ResNet of the same shape"
    )
    p.add_argument("checkpoint", help="a classifier checkpoint (RUN/final)")
    p.add_argument("--out", required=True, help="folder for the plain network's checkpoint")
    p.add_argument(
        "--data-dir",
        help="folder with the data files (default: $HYPERMAML_DATA, else ~/.cache/hypermaml)",
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("params", help="trained and exported parameter counts of (hyper) ResNets")
    p.add_argument("--archs", default="resnet18,resnet34,wrn_28_4,wrn_40_2,wrn_16_2,conv4")
    p.add_argument("--hyper", default="none,stage,layer", help="comma list of none, stage, layer")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument(
        "--compressed", action="store_true", help="also variant 1 with frozen embeddings"
    )
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("demo", help="the 2-D toy of the paper's Figure 1: MAML vs HyperMAML")
    p.add_argument("--out", default="runs/demo", help="folder for the figure and the JSON")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .data import DataError
    from .runtime import keep_freed_memory
    from .training import CheckpointError, TrainingError

    args = build_parser().parse_args(argv)
    keep_freed_memory()
    try:
        return args.func(args)
    except (ConfigError, DataError, CheckpointError, TrainingError, ValueError) as exc:
        print(f"hypermaml {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; `hypermaml train --resume --out RUN` continues a run", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
