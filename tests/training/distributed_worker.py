"""Run by ``tests/training/test_distributed.py`` under torchrun (gloo, 2 processes): each rank
trains its share of every meta-batch; rank 0 also takes the single-process steps on the whole
batches from the same start, and writes the largest weight differences and the sharded and
unsharded evaluations to the JSON file named by argv[1]."""

from __future__ import annotations

import copy
import json
import sys

import torch

from hypermaml.data import TaskShape
from hypermaml.engine.distributed import SINGLE, close_world, init_world
from hypermaml.evaluation import evaluate
from hypermaml.training import meta_step
from tests.conftest import make_class_images
from tests.methods.test_batching import build, random_batch

CASES = {
    # (method, its config, the epoch: MAML's warm-up, half-way through the switch, hypernetwork)
    "hypermaml_warmup": ("hypermaml", {"warmup_epochs": 1, "switch_epochs": 0}, 0),
    "hypermaml_switch": ("hypermaml", {"warmup_epochs": 1, "switch_epochs": 2}, 2),
    "hypermaml": ("hypermaml", {"warmup_epochs": 0, "switch_epochs": 0}, 0),
    "maml_second_order": ("maml", {"inner_steps": 2, "first_order": False}, 0),
    "protonet": ("protonet", {}, 0),
}
STEPS = 3


def train(method: torch.nn.Module, world, epoch: int) -> None:
    method.train()
    method.set_epoch(epoch)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3)
    for step in range(STEPS):
        batch = random_batch(seed=step)  # 3 tasks: 1 on rank 0, 2 on rank 1
        if world.distributed:
            batch = batch.split(3)  # one task per part
            batch = _join(batch[world.share(3).start : world.share(3).stop])
        meta_step(method, optimizer, batch, world=world, world_tasks=3)


def _join(parts):
    first = parts[0]
    cat = [torch.cat([getattr(p, f) for p in parts]) for f in ("support_x", "support_y",
                                                                "query_x", "query_y")]  # fmt: skip
    return type(first)(*cat, first.n_way, first.n_shot)


def classify_epoch(world) -> dict | None:
    """One epoch of ``hypermaml classify``'s loop (SGD with momentum, 5 batches of 50 and a
    last of 10) on a network without BatchNorm, whose 2-process run is the 1-process run."""
    from hypermaml.classify.config import ClassifyConfig
    from hypermaml.classify.train import _train_epoch
    from hypermaml.data import LabelledImages

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (260, 1, 8, 8), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 5, (260,), generator=g)
    data = LabelledImages("synthetic", "train", images, labels, [str(i) for i in range(5)])
    optim = {"batch_size": 50, "lr": 0.1, "milestones": []}
    cfg = ClassifyConfig.from_dict({"data": {"augment": False}, "optim": optim})
    mean, std = torch.zeros(1), torch.ones(1)

    def run(w):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        metrics = _train_epoch(model, optimizer, data, cfg, 0, mean, std, torch.device("cpu"), w)
        return model, metrics

    model, metrics = run(world)
    if not world.is_main:
        return None
    single, single_metrics = run(SINGLE)
    diff = max((p - q).abs().max().item() for p, q in zip(model.parameters(),
                                                            single.parameters()))  # fmt: skip
    return {"max_diff": diff, "metrics": metrics, "single_metrics": single_metrics}


def main(out: str) -> None:
    torch.set_num_threads(1)
    world = init_world("cpu")
    report: dict = {"world_size": world.size, "shares": [len(world.share(3))]}
    for name, (kind, cfg, epoch) in CASES.items():
        method = build(kind, **cfg)
        single = copy.deepcopy(method)
        train(method, world, epoch)
        if world.is_main:
            train(single, SINGLE, epoch)
            diffs = {n: (p - q).abs().max().item()
                     for (n, p), (_, q) in zip(method.named_parameters(),
                                               single.named_parameters())}  # fmt: skip
            moved = max((p - q).abs().max().item() for p, q in
                        zip(single.parameters(), build(kind, **cfg).parameters()))  # fmt: skip
            report[name] = {"max_diff": max(diffs.values()), "moved": moved,
                            "worst": max(diffs, key=diffs.get)}  # fmt: skip
    report["classify"] = classify_epoch(world)
    data = make_class_images(n_classes=8, n_per_class=12, size=16)
    method = build("hypermaml", warmup_epochs=0, switch_epochs=0).float()
    shape = TaskShape(3, 2, 4)
    sharded = evaluate(method, data, shape, n_tasks=21, seed=5, batch_size=4, world=world)
    if world.is_main:
        whole = evaluate(method, data, shape, n_tasks=21, seed=5, batch_size=4, world=SINGLE)
        report["eval"] = {
            "sharded": [sharded.accuracy, sharded.ci95, sharded.task_accuracies],
            "single": [whole.accuracy, whole.ci95, whole.task_accuracies],
        }
        with open(out, "w") as f:
            json.dump(report, f)
    close_world()


if __name__ == "__main__":
    main(sys.argv[1])
