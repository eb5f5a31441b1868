"""``hypermaml data``: decode a dataset into its cache ahead of time, or check what is on disk."""

from __future__ import annotations

import argparse
from typing import Any

from .. import api
from .args import positive_int


def cmd_prepare(args: argparse.Namespace) -> int:
    report = api.prepare_data(args.name, args.data_dir, args.source, args.skip_bad_images,
                              args.size)  # fmt: skip
    print("\n".join(report.lines()))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    report = api.check_data(args.name, args.data_dir, args.source, args.decode, args.size)
    print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _dataset_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("name", help="cub, mini_imagenet, mini_to_cub, fc100, cifar_fs, "
                   "fc100_to_mini, folder, omniglot, cross_char")  # fmt: skip
    c.add_argument("--from", dest="source", help="where the images are (cub, mini_imagenet: "
                   "when not in their standard places; folder: the class folders)")  # fmt: skip
    c.add_argument("--size", type=positive_int, default=84, help="folder: image side (84)")
    c.add_argument("--data-dir", help="data folder (default: $HYPERMAML_DATA)")


def register(sub: Any) -> None:
    p = sub.add_parser("data", help="prepare (decode into the cache) or check a dataset")
    commands = p.add_subparsers(dest="data_command", required=True)
    c = commands.add_parser("prepare", help="decode every split into the cache, once")
    _dataset_args(c)
    c.add_argument("--skip-bad-images", action="store_true", help="leave damaged images out")
    c.set_defaults(func=cmd_prepare)
    c = commands.add_parser("check", help="classes, images per class, problems, cache state")
    _dataset_args(c)
    c.add_argument("--decode", action="store_true", help="decode every image (finds damage)")
    c.set_defaults(func=cmd_check)
