"""Run configuration: typed dataclasses, YAML presets and ``--dotted.key value`` overrides.

Config flows one way: a preset (YAML) gives defaults, command-line overrides replace single fields, the
result is validated here (unknown keys and ill-typed values are errors naming the key and the closest valid
one), then saved as ``config.yaml`` in the run folder and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from typing import Any

import yaml

from .adapters.config import RAdapterConfig

DEFAULT_ALPHAS = [round(0.1 * i, 1) for i in range(11)]


@dataclass
class ModelConfig:
    name: str = field(
        default="ViT-B-16",
        metadata={
            "help": "open_clip name, 'local-dir:PATH', 'hf:NAME_OR_PATH' or a path to an open_clip model-config .json"
        },
    )
    pretrained: str | None = field(
        default="openai", metadata={"help": "open_clip pretrained tag or checkpoint path; 'none' = random init"}
    )


@dataclass
class DataConfig:
    train: str | None = field(
        default=None,
        metadata={"help": "training data: an ImageFolder dir, a CSV file, or 'world' (the built-in offline benchmark)"},
    )
    kind: str = field(default="imagefolder", metadata={"help": "imagefolder | csv | world"})
    classnames: str | None = field(default=None, metadata={"help": "file of class names (default: folder names)"})
    csv_img_key: str = "filepath"
    csv_caption_key: str = "title"
    csv_label_key: str = "class"
    csv_sep: str = "\t"
    templates: str = field(
        default="openai",
        metadata={
            "help": "openai | simple | world | path to a text file with one template per line ('{}' = class name)"
        },
    )
    shots: int | None = field(default=None, metadata={"help": "k-shot: sample k training images per class"})
    holdout_fraction: float = field(
        default=0.0, metadata={"help": "fraction of training data held out to choose α; 0 disables automatic choice"}
    )
    train_scale: list[float] = field(default_factory=lambda: [0.9, 1.0])
    hflip: bool = False
    workers: int = 2
    skip_corrupt: bool = False
    eval_sets: list[dict] = field(
        default_factory=list, metadata={"help": "list of {name, path, kind, ood, class_subset}"}
    )
    world_seed: int = field(default=0, metadata={"help": "world benchmark: seed of the generated data"})
    world_train: int = 2000
    world_test: int = 1000
    world_rho: float = 0.8


@dataclass
class OptimConfig:
    lr: float = 5e-4
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay on >=2-D tensors only"})
    batch_size: int = field(default=512, metadata={"help": "global batch size (all processes together)"})
    epochs: int = 10
    steps: int | None = field(default=None, metadata={"help": "total optimizer steps (overrides epochs)"})
    warmup_steps: int = 500
    grad_clip: float | None = 1.0
    accum_steps: int = field(default=1, metadata={"help": "gradient accumulation micro-steps per optimizer step"})
    precision: str = field(
        default="fp32",
        metadata={"help": "fp32 | bf16 (autocast, CPU or CUDA) | fp16 (CUDA autocast with a gradient scaler)"},
    )


@dataclass
class MethodConfig:
    name: str = field(default="radapter", metadata={"help": "zeroshot | ft | lpft | flyp | wiseft | lora | radapter"})
    loss: str = field(default="mpm_nce", metadata={"help": "radapter/lora loss: mpm_nce | clip | ce"})
    margin: float = 0.05
    label_smoothing: float = 0.02
    adapter: RAdapterConfig = field(default_factory=RAdapterConfig)
    use_ema: bool = field(default=True, metadata={"help": "evaluate/merge the EMA adapter (False: live weights)"})
    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    probe_fraction: float = field(default=0.5, metadata={"help": "lpft: fraction of steps spent on the linear probe"})
    probe_lr: float = 1e-3
    ft_model: str | None = field(
        default=None, metadata={"help": "wiseft: run dir of a finished 'ft' run (otherwise wiseft trains ft itself)"}
    )


@dataclass
class EvalConfig:
    alphas: list[float] = field(default_factory=lambda: list(DEFAULT_ALPHAS))
    batch_size: int = 256
    max_images: int | None = field(default=None, metadata={"help": "cap per eval set (quick looks)"})


@dataclass
class RunConfig:
    out: str = "runs/run"
    seed: int = 0
    device: str = field(default="auto", metadata={"help": "auto | cpu | cuda | cuda:N"})
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every: int = field(
        default=0,
        metadata={
            "help": "checkpoint every N steps, kept permanently (0 = at each epoch end, keeping the last `keep`)"
        },
    )
    keep: int = field(default=2, metadata={"help": "how many step checkpoints to keep"})
    log_every: int = 10
    tensorboard: bool = False
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConfigError(ValueError):
    """A preset or override names an unknown key or gives a value of the wrong type."""


def _closest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return build_dataclass(tp, value, where)
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any or tp is dict:
        if tp is dict and not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def build_dataclass(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Builds ``cls`` from a (nested) dict, validating every key and value type."""
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in valid:
            raise ConfigError(f"unknown config key {path!r}{_closest(key, valid)}")
        kwargs[key] = _coerce(value, hints[key], path)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where or cls.__name__}: {e}") from e


def _all_keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        out.append(key)
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(_all_keys(hints[f.name], key + "."))
    return out


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Sets ``data[a][b][c] = value`` for ``dotted == "a.b.c"``, checking the key path exists in RunConfig."""
    valid = _all_keys(RunConfig)
    if dotted not in valid:
        raise ConfigError(f"unknown config key {dotted!r}{_closest(dotted, valid)}")
    node = data
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"config key {dotted!r}: {part!r} is not a section")
    node[parts[-1]] = value


PRESET_DIR = os.path.join(os.path.dirname(__file__), "configs")


def resolve_preset(name_or_path: str) -> str:
    """A preset file path, or the name of a built-in preset in ``radapter/configs`` (with or without .yaml)."""
    if os.path.isfile(name_or_path):
        return name_or_path
    for candidate in (name_or_path, f"{name_or_path}.yaml"):
        path = os.path.join(PRESET_DIR, candidate)
        if os.path.isfile(path):
            return path
    names = sorted(p[:-5] for p in os.listdir(PRESET_DIR) if p.endswith(".yaml"))
    raise ConfigError(
        f"config {name_or_path!r}: no such file and no built-in preset of that name{_closest(name_or_path, names)}; "
        f"built-in presets: {', '.join(names)}"
    )


def load_yaml(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    base = data.pop("base", None)  # presets may extend another preset
    if base:
        parent = load_yaml(
            resolve_preset(
                base
                if os.path.isabs(base)
                else os.path.join(os.path.dirname(path), base)
                if os.path.isfile(os.path.join(os.path.dirname(path), base))
                else base
            )
        )
        data = deep_update(parent, data)
    return data


def deep_update(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        out[k] = deep_update(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_value(text: str) -> Any:
    """A command-line value as YAML (``1e-3`` → float, ``[0, 0.5]`` → list, ``none`` stays a string)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) or value is None and text.strip().lower() not in ("null", "~", ""):
        return text
    return value


def load_config(preset: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Preset (file or built-in name) + ``{"dotted.key": value}`` overrides → a validated RunConfig."""
    data = load_yaml(resolve_preset(preset)) if preset else {}
    if preset:
        # validate the preset's own keys before overriding, so a typo in the file names the file
        try:
            build_dataclass(RunConfig, data)
        except ConfigError as e:
            raise ConfigError(f"{preset}: {e}") from e
    for key, value in (overrides or {}).items():
        set_dotted(data, key, value)
    return build_dataclass(RunConfig, data)


def save_config(cfg: RunConfig, path: str) -> None:
    from .utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
