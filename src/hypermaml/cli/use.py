"""Using a trained model on one's own classes: ``predict`` and the ``models`` registry."""

from __future__ import annotations

import argparse
from typing import Any

from .. import api
from ..checkpoint.registry import models_dir, registry
from .args import add_data_args, add_json_arg, positive_int, save_json


def cmd_predict(args: argparse.Namespace) -> int:
    report = api.predict(args.checkpoint, args.support, args.query, top_k=args.top_k,
                         batch_size=args.batch_size, device=args.device)  # fmt: skip
    print("\n".join(report.lines(args.top_k)))
    if args.out:
        report.write(args.out)
        print(f"written to {args.out}")
    return 0


def cmd_export_onnx(args: argparse.Namespace) -> int:
    path = api.export_onnx(args.checkpoint, args.out, args.statistics, args.n_way, args.support)
    what = "adapted classifier" if args.support else "adaptation"
    print(f"{args.checkpoint}: {what} written to {path} (query statistics: {args.statistics})")
    if args.check:
        report = api.check_onnx(args.checkpoint, path, args.statistics, args.data_dir,
                                args.tasks, args.threads)  # fmt: skip
        print("\n".join(report.lines()))
        save_json(args, report.to_dict())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    print(f"serving {args.checkpoint} at http://{args.host}:{args.port}/ (Ctrl-C stops)")
    api.serve(args.checkpoint, args.host, args.port, args.device)
    return 0


def cmd_load_test(args: argparse.Namespace) -> int:
    report = api.load_test(args.url, args.clients, args.requests, args.malformed_every)
    print("\n".join(report.lines()))
    save_json(args, report.to_dict())
    return 0 if report.valid_failed == 0 and report.alive_after else 1


def cmd_models(args: argparse.Namespace) -> int:
    reg = registry()
    print(f"{'name':<34} {'method':<10} {'task':<28} {'test accuracy':>15}  sha256")
    for name, e in reg["models"].items():  # stored in name order
        task = f"{e['dataset']} {e['n_way']}-way {e['n_shot']}-shot"
        acc = f"{e['accuracy']:.2f} ± {e['ci95']:.2f}"
        print(f"{name:<34} {e['method']:<10} {task:<28} {acc:>15}  "
              f"{e['sha256']['model.safetensors'][:12]}")  # fmt: skip
    print(f"{len(reg['models'])} models; test accuracy over {e['test_tasks']} tasks (seed 0). "
          f"Load one by name; downloads go to {models_dir()}")  # fmt: skip
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("predict", help="teach a model new classes from a folder, classify images")
    p.add_argument("checkpoint", help="checkpoint folder or registered name (hypermaml models)")
    p.add_argument("--support", required=True, help="folder of class folders: DIR/<class>/<images>")
    p.add_argument("--query", required=True, nargs="+", help="image files or folders of them")
    p.add_argument("--top-k", type=positive_int, default=3, help="classes listed per image (3)")
    p.add_argument("--batch-size", type=positive_int, default=64,
                   help="query images scored at once (64)")  # fmt: skip
    p.add_argument("--out", help="write the table as CSV (.csv) or JSON (other names)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (cpu)")
    p.set_defaults(func=cmd_predict)
    p = sub.add_parser("export-onnx", help="an ONNX graph of a model's adaptation, or of a "
                       "classifier adapted to a support folder")  # fmt: skip
    p.add_argument("checkpoint", help="checkpoint folder or registered name")
    p.add_argument("--out", required=True, help="the .onnx file to write")
    p.add_argument(
        "--statistics",
        default="support",
        choices=["support", "queries"],
        help="queries normalised with the support set (default), or together",
    )
    p.add_argument("--n-way", type=positive_int, help="classes per task (ProtoNet: any)")
    p.add_argument("--support", help="export the classifier adapted to DIR/<class>/<images>")
    p.add_argument("--check", action="store_true",
                   help="compare with PyTorch on test tasks and time both")  # fmt: skip
    p.add_argument("--tasks", type=positive_int, default=100, help="tasks of --check (100)")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads of --check (1)")
    add_data_args(p, device=False)
    add_json_arg(p, "the --check report")
    p.set_defaults(func=cmd_export_onnx)
    p = sub.add_parser("serve", help="a local web page to teach a model new classes and try it")
    p.add_argument("checkpoint", help="checkpoint folder or registered name")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine)")
    p.add_argument("--port", type=positive_int, default=8000)
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto (cpu)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("load-test", help="concurrent clients against a local hypermaml serve")
    p.add_argument("--url", default="http://127.0.0.1:8000", help="the server (a local address)")
    p.add_argument("--clients", type=positive_int, default=20)
    p.add_argument("--requests", type=positive_int, default=25, help="requests per client")
    p.add_argument("--malformed-every", type=positive_int, default=5,
                   help="every n-th request of a client is malformed (5)")  # fmt: skip
    add_json_arg(p, "the report")
    p.set_defaults(func=cmd_load_test)
    p = sub.add_parser("models", help="the reference models loadable by name")
    p.set_defaults(func=cmd_models)
