"""The training loop, its schedule, sampler, checkpoints, precision and distributed set-up."""

from .trainer import TrainData, Trainer, TrainingDiverged, TrainStep, total_steps

__all__ = ["TrainData", "TrainStep", "Trainer", "TrainingDiverged", "total_steps"]
