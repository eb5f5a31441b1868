"""``hypermaml analyze``: analyses of trained checkpoints and runs (the papers' tables and
figures)."""

from __future__ import annotations

import argparse
from typing import Any

from ..experiments import curves, movement, updates
from ..outputs import check_writable_file
from ..runs import ledger
from .args import add_data_args, add_json_arg, add_tasks_args, save_json, step_count, tasks_kwargs


def cmd_analyze_updates(args: argparse.Namespace) -> int:
    reports = updates.analyze_updates(args.checkpoints, maml_steps=args.maml_steps,
                                      data_root=args.data_dir, device=args.device,
                                      **tasks_kwargs(args))  # fmt: skip
    save_json(args, reports)
    return 0


def cmd_analyze_curves(args: argparse.Namespace) -> int:
    check_writable_file(args.out, "--out")
    labels = args.labels.split(",") if args.labels else None
    runs = curves.read_curves(args.runs, labels)
    for curve in runs:
        print(curves.describe(curve))
    curves.plot_curves(runs, args.out, args.title)
    print(f"figure written to {args.out}")
    return 0


def cmd_analyze_movement(args: argparse.Namespace) -> int:
    check_writable_file(args.out, "--out")
    report = movement.analyze_movement(args.checkpoints, maml_steps=args.maml_steps,
                                       plot=args.out, data_root=args.data_dir,
                                       device=args.device, **tasks_kwargs(args))  # fmt: skip
    save_json(args, report)
    return 0


def cmd_analyze_ledger(args: argparse.Namespace) -> int:
    rows = ledger.update_ledger(args.out, [ledger.ledger_row(run) for run in args.runs])
    print(f"{'run':<40} {'epochs':>6} {'val':>6} {'test':>14} {'test evals':>10}")
    for r in rows:
        test = "-" if r.test_accuracy is None else f"{r.test_accuracy:.2f} ± {r.test_ci95 or 0:.2f}"
        print(f"{r.run:<40} {r.epochs:>6} {r.val_accuracy:>6.2f} {test:>14} "
              f"{r.test_evaluations:>10}")  # fmt: skip
    print(f"{len(rows)} runs in {args.out}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("analyze", help="analyses of trained checkpoints (the paper's tables)")
    analyses = p.add_subparsers(dest="analysis", required=True)
    p = analyses.add_parser(
        "updates", help="norm of the classifier update per test task (the paper's Table 3)"
    )
    p.add_argument("checkpoints", nargs="+", help="HyperMAML or MAML checkpoint folders")
    p.add_argument("--maml-steps", type=step_count, help="MAML's test steps (default: its own)")
    add_tasks_args(p)
    add_json_arg(p)
    add_data_args(p)
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
    p = analyses.add_parser("movement", help="inner-loop movement per layer of plain against "
                            "generated weights (the HyperResNets paper's Figure 4)")  # fmt: skip
    p.add_argument("checkpoints", nargs="+", help="MAML checkpoints, the plain network first")
    p.add_argument("--maml-steps", type=step_count, help="inner steps (default: each one's own)")
    p.add_argument("--out", help="image file for the grouped bars (e.g. movement.png)")
    add_tasks_args(p)
    add_json_arg(p)
    add_data_args(p)
    p.set_defaults(func=cmd_analyze_movement)
    p = analyses.add_parser("ledger", help="one CSV row per run: budget, validation and test "
                            "figures, how often its test split was scored")  # fmt: skip
    p.add_argument("runs", nargs="+", help="run folders (a listed run is updated, never dropped)")
    p.add_argument("--out", required=True, help="the ledger CSV (e.g. docs/ledger.csv)")
    p.set_defaults(func=cmd_analyze_ledger)
