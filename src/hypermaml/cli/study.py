"""Commands that reproduce the papers' timings and toys: bench, params, demo."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..experiments import adapt_time, speed, toy2d
from ..models.export import parameter_table
from ..outputs import check_writable_file
from .args import (
    add_data_args,
    add_json_arg,
    add_precision_arg,
    add_tasks_args,
    int_list,
    join_launch,
    positive_int,
    save_json,
    tasks_kwargs,
)


def cmd_bench(args: argparse.Namespace) -> int:
    check_writable_file(args.plot, "--plot")
    join_launch(args.device, "bench adapt" if args.what == "adapt" else None)
    if args.what == "adapt":
        report = adapt_time.run_adapt_bench(
            args.maml, args.hypermaml, args.steps, repeats=args.repeats, data_root=args.data_dir,
            device=args.device, threads=args.threads, plot=args.plot, untrained=args.untrained,
            **tasks_kwargs(args),
        )  # fmt: skip
        save_json(args, report)
        return 0
    names = {f.name for f in fields(speed.BenchSettings)}
    settings = speed.BenchSettings(**{k: v for k, v in vars(args).items() if k in names})
    cases = speed.select_cases(args.methods, args.maml_steps, args.maml_batching)
    rows, reference = speed.run_bench(cases, settings, isolate=not args.in_process)
    save_json(args, speed.report(rows, settings, reference))
    print(f"\n{speed.summary(rows, reference)}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    """Trained and exported parameter counts of plain and hyper networks (HyperResNets tables)."""
    print(f"{'network':<30} {'trained':>12} {'after export':>13}")
    table = parameter_table(args.archs.split(","), args.hyper.split(","), args.classes,
                            args.channels, args.compressed)  # fmt: skip
    for name, train, test in table:
        print(f"{name:<30} {train:>12,} {test:>13,}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    toy2d.run_demo(Path(args.out), seed=args.seed, force=args.force)
    return 0


def phases(text: str) -> tuple[str, ...]:
    if set(chosen := tuple(text.split(","))) <= {"train", "eval"}:
        return chosen
    raise argparse.ArgumentTypeError(f"{text!r}: give train, eval or train,eval")


def _bench_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="speed: training and test speed of every method, peak memory; adapt: MAML with "
        "k steps against HyperMAML, seconds and accuracy on the same test tasks (Table 4)",
    )
    p.add_argument("what", nargs="?", default="speed", choices=["speed", "adapt"])
    p.add_argument("--methods", help="comma list of hypermaml, maml, maml-K, protonet (all)")
    p.add_argument("--maml-steps", type=int_list, default="1,5", help="MAML inner steps (1,5)")
    p.add_argument("--maml-batching", default="auto", choices=["auto", "loop", "vmap", "both"])
    p.add_argument(
        "--dataset",
        default="omniglot",
        choices=list(speed.SHAPES),
        help="the shape of the synthetic split (default omniglot: 28x28 grey)",
    )
    p.add_argument("--backbone", default="conv4", help="encoder of every method (conv4)")
    p.add_argument(
        "--hyper",
        default="none",
        choices=["none", "stage", "layer"],
        help="generated convolutions: stage (variant 1) or layer (variant 2)",
    )
    p.add_argument("--n-way", type=positive_int, default=5)
    p.add_argument("--n-shot", type=positive_int, default=1)
    p.add_argument("--n-query", type=positive_int, default=16, help="training queries per class")
    p.add_argument("--meta-batch", type=positive_int, default=4)
    p.add_argument("--tasks-per-pass", type=positive_int, help="training tasks per pass (all)")
    p.add_argument("--train-episodes", type=positive_int, default=200)
    p.add_argument("--eval-tasks", type=positive_int, default=600)
    p.add_argument("--eval-batch", type=positive_int, default=8, help="test tasks per forward")
    p.add_argument("--phases", type=phases, default="train,eval", help="train, eval or both")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    p.add_argument(
        "--no-task-parallel", dest="task_parallel", action="store_false",
        help="use the threads inside each operation instead of one task worker per thread",
    )  # fmt: skip
    p.add_argument("--n-classes", type=positive_int, help="classes of the synthetic split")
    p.add_argument("--image-size", type=positive_int, help="image side (default: the dataset's)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--in-process", action="store_true", help="no fresh process per phase")
    p.add_argument("--deterministic", action="store_true", help="pin the kernels, as training does")
    add_precision_arg(p)
    add_json_arg(p, "settings, machine and results")
    adapt = p.add_argument_group("bench adapt (trained checkpoints, real test tasks)")
    adapt.add_argument("--maml", help="MAML checkpoint folder (a config with --untrained)")
    adapt.add_argument("--hypermaml", help="HyperMAML checkpoint folder (a config, --untrained)")
    adapt.add_argument(
        "--untrained",
        action="store_true",
        help="time only: methods built from configs, synthetic tasks",
    )
    adapt.add_argument("--steps", type=int_list, default="0,1,2,3,4,5,10,25,50,100",
                       help="MAML's test steps")  # fmt: skip
    add_tasks_args(adapt)
    adapt.add_argument("--repeats", type=positive_int, default=1, help="timed runs per row")
    adapt.add_argument("--plot", help="draw accuracy against time into this image file")
    add_data_args(adapt, device=False)
    p.set_defaults(func=cmd_bench)


def register(sub: Any) -> None:
    _bench_parser(sub)

    p = sub.add_parser("params", help="trained and exported parameter counts of (hyper) ResNets")
    p.add_argument("--archs", default="resnet18,resnet34,wrn_28_4,wrn_40_2,wrn_16_2,conv4")
    p.add_argument("--hyper", default="none,stage,layer", help="comma list of none, stage, layer")
    p.add_argument("--classes", type=positive_int, default=10)
    p.add_argument("--channels", type=positive_int, default=3)
    p.add_argument("--compressed", action="store_true", help="also variant 1, frozen embeddings")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("demo", help="the 2-D toy of the paper's Figure 1: MAML vs HyperMAML")
    p.add_argument("--out", default="runs/demo", help="folder for the figure and the JSON")
    p.add_argument("--force", action="store_true", help="write into a folder not made by demo")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
