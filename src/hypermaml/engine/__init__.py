"""The engine: what makes few-shot work fast, kept apart from what the networks compute.

Nothing here knows a method or a dataset; ``models`` and the training loops call into it.

- ``kernels``: times NNPACK, oneDNN and GEMM once per convolution shape and product (forward,
  input gradient, weight gradient) and runs the fastest; a one-channel image's convolution as a
  1x1 convolution of shifted copies. CPU only, float32, outside ``torch.func``. Conv4 training
  1.3x faster. In deterministic mode (``kernels.set_deterministic(True)``) a fixed shape rule
  picks instead of the clock, so every process with the same thread count computes the same
  bits.
- ``fused_block``: Conv4's conv -> BatchNorm -> max-pool -> ReLU in cache-sized chunks without
  autograd, BatchNorm folded into the filters on grey images. CPU inference (it computes the
  same function anywhere). Conv4 evaluation 2.4x faster.
- ``parallel``: ``TaskParallel`` runs whole tasks in worker threads, one core each, instead of
  splitting every small operation over the cores. CPU only (one worker elsewhere). Up to 1.5x
  (MAML evaluation), 1.2-1.4x MAML training, nothing for HyperMAML training.
- ``replicas``: per-thread replicas of a module, so that ``functional_call`` (MAML's adapted
  weights) is safe in task threads. MAML over HyperConv4 on the workers: 2x per epoch.
- ``process``: glibc's malloc keeps freed memory instead of returning and re-faulting it.
  Linux only. About 15% of a Conv4 training step.
- ``device``: ``pick_device`` (``auto``, ``cpu``, ``cuda:N``), with a clear error when CUDA is
  absent. Every device.
- ``distributed``: several processes under torchrun (NCCL on GPUs, gloo on CPUs): each rank
  trains its share of every meta-batch and the meta-gradients are summed by hand in flat
  buckets (DDP supports neither double backward nor ``functional_call``); evaluations are
  sharded and gathered. Every device.
- ``precision``: ``train.precision`` / ``--precision`` (fp32, bf16, fp16 with a gradient
  scaler) through ``torch.autocast``, entered in each task worker. Every device.

The gains are those measured in docs/performance.md on a 2-core CPU.

Why a CPU engine: a few-shot task is small (a 5-way 1-shot Omniglot task is 80 images of 28x28),
so on a CPU the time goes to memory traffic, per-operation overheads and idle threads rather than
arithmetic; these modules remove them. Off the CPU every path falls back to plain PyTorch.
"""

from .device import pick_device
from .parallel import TaskParallel
from .process import keep_freed_memory

__all__ = ["TaskParallel", "keep_freed_memory", "pick_device"]
