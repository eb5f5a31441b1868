"""Accuracy of the three ways to normalise query images under transductive BatchNorm, on the
same test tasks: the benchmarks' (the 75 queries of a task together), each query with the
support set (``statistics="support"``, the API's default), and each query alone.

    python tools/query_statistics.py cross_char_1s_hypermaml cross_char_1s_maml_frame --tasks 300
"""

from __future__ import annotations

import argparse

import torch

import hypermaml
from hypermaml.data import EpisodeSampler, load_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="checkpoint folders or registered names")
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'model':<32} {'together':>9} {'with support':>13} {'alone':>7}   ({args.tasks} tasks)")
    for name in args.models:
        model = hypermaml.load(name)
        dc = model.config.data
        sampler = EpisodeSampler(load_split(dc.dataset, "test"), dc.test_shape, seed=args.seed)
        hits = {"queries": [], "support": [], "alone": []}
        for _ in range(args.tasks):
            batch = sampler.sample(1)
            task = model.adapt(batch.support_x[0], batch.support_y[0].tolist())
            query, truth = batch.query_x[0], batch.query_y[0]
            for mode in ("queries", "support"):
                predicted = task.logits(query, statistics=mode).argmax(-1)
                hits[mode].append((predicted == truth).float().mean())
            alone = task.logits(query, batch_size=1, statistics="queries").argmax(-1)
            hits["alone"].append((alone == truth).float().mean())
        acc = {k: 100 * float(torch.stack(v).mean()) for k, v in hits.items()}
        print(f"{name:<32} {acc['queries']:>9.2f} {acc['support']:>13.2f} {acc['alone']:>7.2f}")


if __name__ == "__main__":
    main()
