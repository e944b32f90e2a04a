"""The training loop, its schedule, sampler, checkpoints and distributed set-up."""

from .trainer import Trainer, TrainingDiverged

__all__ = ["Trainer", "TrainingDiverged"]
