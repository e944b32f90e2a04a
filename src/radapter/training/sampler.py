"""Deterministic, resumable data order.

Each optimizer step takes one *global* batch: a contiguous slice of a per-epoch permutation drawn from
``seed`` and the epoch. Rank r of W gets the r-th contiguous share of it, so the gathered global batch is in
the same order as a single process would see it (2-process runs then match 1-process runs exactly). Every
item carries its own augmentation seed, derived from (seed, epoch, index), so augmentations do not depend on
worker processes or on where a run was resumed.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

from ..config import ConfigError


def item_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 7_919 + index * 104_729 + 12_345) % (2**31 - 1)


class StepSampler(Sampler):
    """Yields ``(index, epoch, aug_seed)`` for this rank's micro-batches from ``start_step`` to ``total_steps``.

    Args:
        n: Dataset size.
        global_batch: Samples per optimizer step over all processes.
        seed: Run seed.
        total_steps: Optimizer steps of the whole run.
        start_step: First optimizer step to produce (resume).
        rank, world_size: This process's share.
    """

    def __init__(
        self,
        n: int,
        global_batch: int,
        seed: int,
        total_steps: int,
        start_step: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if global_batch % world_size:
            raise ConfigError(f"optim.batch_size={global_batch} must be divisible by the {world_size} processes")
        if n < global_batch:
            raise ConfigError(f"optim.batch_size={global_batch} is larger than the training set ({n} images)")
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.total_steps, self.start_step = total_steps, start_step
        self.rank, self.world_size = rank, world_size
        self.steps_per_epoch = n // global_batch

    def _perm(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        share = self.global_batch // self.world_size
        epoch, perm = -1, None
        for step in range(self.start_step, self.total_steps):
            e = step // self.steps_per_epoch
            if e != epoch:
                epoch, perm = e, self._perm(e)
            i = step % self.steps_per_epoch
            batch = perm[i * self.global_batch : (i + 1) * self.global_batch]
            for index in batch[self.rank * share : (self.rank + 1) * share].tolist():
                yield index, epoch, item_seed(self.seed, epoch, index)

    def __len__(self) -> int:
        return (self.total_steps - self.start_step) * (self.global_batch // self.world_size)
