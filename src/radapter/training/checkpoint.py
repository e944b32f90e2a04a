"""Checkpoints that survive being killed at any moment.

A checkpoint is a folder ``checkpoints/step_NNNNNNN/`` holding ``model.safetensors`` (what the method
trains: adapters + EMA, or tuned weights), ``state.pt`` (optimizer, scheduler, scaler, step, RNG states;
tensors and plain values only, read back with ``torch.load(weights_only=True)``) and ``config.yaml``. It is
written under a temporary name and renamed into place, then ``checkpoints/latest`` (a one-line text file) is
replaced atomically, so a crash leaves either the old or the new checkpoint, never half of one.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import torch
import yaml

from ..utils import atomic_save_safetensors, atomic_write_text, load_safetensors

LATEST = "latest"


def _ckpt_root(run_dir: str) -> str:
    return os.path.join(run_dir, "checkpoints")


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: str,
    step: int,
    tensors: dict[str, torch.Tensor],
    state: dict[str, Any],
    config: dict[str, Any],
    keep: int = 2,
    permanent: bool = False,
) -> str:
    """Writes a checkpoint atomically and prunes old ones (keeping ``keep`` and any ``permanent`` ones)."""
    root = _ckpt_root(run_dir)
    os.makedirs(root, exist_ok=True)
    name = f"step_{step:07d}"
    final = os.path.join(root, name)
    tmp = os.path.join(root, f".tmp-{name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    atomic_save_safetensors(tensors, os.path.join(tmp, "model.safetensors"))
    torch.save(state, os.path.join(tmp, "state.pt"))
    atomic_write_text(os.path.join(tmp, "config.yaml"), yaml.safe_dump(config, sort_keys=False))
    if permanent:
        open(os.path.join(tmp, "KEEP"), "w").close()
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(os.path.join(root, LATEST), name + "\n")
    _prune(root, keep, current=name)
    return final


def _prune(root: str, keep: int, current: str) -> None:
    steps = sorted(
        d for d in os.listdir(root) if d.startswith("step_") and not os.path.exists(os.path.join(root, d, "KEEP"))
    )
    for d in steps[: max(0, len(steps) - max(keep, 1))]:
        if d != current:
            shutil.rmtree(os.path.join(root, d), ignore_errors=True)


def latest_checkpoint(run_dir: str) -> str | None:
    pointer = os.path.join(_ckpt_root(run_dir), LATEST)
    if not os.path.isfile(pointer):
        return None
    with open(pointer, encoding="utf-8") as f:
        path = os.path.join(_ckpt_root(run_dir), f.read().strip())
    return path if os.path.isdir(path) else None


def load_checkpoint(path: str) -> tuple[dict[str, torch.Tensor], dict[str, Any], dict[str, Any]]:
    """``(tensors, state, config)`` of a checkpoint folder."""
    for name in ("model.safetensors", "state.pt", "config.yaml"):
        if not os.path.isfile(os.path.join(path, name)):
            raise FileNotFoundError(f"{path}: incomplete checkpoint, {name} is missing")
    tensors = load_safetensors(os.path.join(path, "model.safetensors"))
    state = torch.load(os.path.join(path, "state.pt"), map_location="cpu", weights_only=True)
    with open(os.path.join(path, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    return tensors, state, config


def load_final_method_state(run_dir: str, expected_method: str | None = None) -> dict[str, torch.Tensor]:
    """The trained tensors of a finished run (its final checkpoint)."""
    path = latest_checkpoint(run_dir)
    if path is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint found (expected {run_dir}/checkpoints/latest)")
    tensors, state, config = load_checkpoint(path)
    method = config.get("method", {}).get("name")
    if expected_method and method != expected_method:
        raise ValueError(f"{run_dir}: is a {method!r} run, expected a {expected_method!r} run")
    if not state.get("finished"):
        raise ValueError(
            f"{run_dir}: training did not finish (last checkpoint at step {state.get('step')}); "
            "resume it first with --resume"
        )
    return tensors
