"""The training loop, its schedule, sampler, checkpoints and distributed set-up.

``Trainer`` is imported lazily: the methods import ``training.schedule``, and the trainer imports the methods.
"""

__all__ = ["Trainer", "TrainingDiverged"]


def __getattr__(name: str):
    if name in __all__:
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'radapter.training' has no attribute {name!r}")
