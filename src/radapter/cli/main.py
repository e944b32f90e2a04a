"""``radapter`` command line: train, eval, sweep, merge, export, verify, plot, demo.

Every command is callable in-process (``main(["train", ...])``), which is how the tests drive it.
``--config PRESET`` gives defaults (a YAML file or a built-in preset name), ``--dotted.key value`` overrides
single fields; ``--model``, ``--pretrained``, ``--method``, ``--out``, ``--seed`` and ``--device`` are
shortcuts for ``model.name``, ``model.pretrained``, ``method.name``, ``out``, ``seed``, ``device``.
"""

from __future__ import annotations

import argparse
import logging
import sys

from ..config import ConfigError, parse_value

SHORTCUTS = {
    "model": "model.name",
    "pretrained": "model.pretrained",
    "method": "method.name",
    "out": "out",
    "seed": "seed",
    "device": "device",
}


def parse_overrides(extra: list[str]) -> dict[str, object]:
    """``["--optim.lr", "1e-3", "--model", "ViT-B-16"]`` → ``{"optim.lr": 0.001, "model.name": "ViT-B-16"}``."""
    out: dict[str, object] = {}
    i = 0
    while i < len(extra):
        token = extra[i]
        if not token.startswith("--"):
            raise ConfigError(f"unexpected argument {token!r} (overrides look like --section.key value)")
        key = token[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            i += 1
        else:
            if i + 1 >= len(extra) or extra[i + 1].startswith("--"):
                raise ConfigError(f"option {token!r} needs a value")
            value = extra[i + 1]
            i += 2
        key = key.replace("-", "_") if key not in SHORTCUTS else key
        out[SHORTCUTS.get(key, key)] = parse_value(value) if key not in ("model", "pretrained", "out") else value
    return out


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML preset file or built-in preset name (see `radapter presets`)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radapter", description="R-Adapter: robust, efficient CLIP fine-tuning")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune, evaluate, export (overrides: --section.key value)")
    _add_common(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    p.add_argument("--stop-after", type=int, default=None, help=argparse.SUPPRESS)

    p = sub.add_parser("eval", help="evaluate a finished run (optionally at other α / on other sets)")
    p.add_argument("--run", required=True, help="run directory")
    p.add_argument("--alpha", type=float, action="append", help="α to evaluate (repeatable)")

    p = sub.add_parser("sweep", help="α sweep of a finished run (default grid 0, 0.1, …, 1)")
    p.add_argument("--run", required=True)
    p.add_argument("--alphas", default=None, help="comma-separated α grid")

    for name, help_text in (
        ("merge", "merge a run's adapter at α into a plain model in the backbone's format"),
        ("export", "write a run's adapter folder and its merged model at α"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--run", help="run directory (or give --adapter and --model)")
        p.add_argument("--adapter", help="adapter folder (adapter_config.json + adapter_model.safetensors)")
        p.add_argument("--model", dest="model_spec", help="base model when using --adapter")
        p.add_argument("--pretrained", dest="pretrained_tag", default=None)
        p.add_argument("--alpha", type=float, default=None, help="re-scaling α (default: the adapter config's)")
        p.add_argument("--out", dest="dest", required=True, help="output directory")

    p = sub.add_parser("verify", help="merged vs unmerged max |difference| and a NaN check on a batch")
    p.add_argument("--run")
    p.add_argument("--adapter")
    p.add_argument("--model", dest="model_spec")
    p.add_argument("--pretrained", dest="pretrained_tag", default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--tolerance", type=float, default=1e-4)

    p = sub.add_parser("plot", help="table + ID-vs-OOD plot from results.jsonl files")
    p.add_argument("results", nargs="+")
    p.add_argument("--out", dest="dest", required=True, help="output directory")

    p = sub.add_parser("demo", help="the offline benchmark: every method on the built-in world, in minutes")
    p.add_argument("--out", dest="dest", default="runs/demo")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 seed, fewer rows (≈3 min)")
    p.add_argument("--size", choices=["full", "ci"], default="full", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])

    sub.add_parser("presets", help="list the built-in presets")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # our messages at INFO; libraries (open_clip logs through the root logger) only from WARNING unless -v
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("radapter").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from . import commands

    try:
        overrides = parse_overrides(extra)
        if overrides and args.command in ("merge", "export", "verify", "plot", "demo", "presets"):
            raise ConfigError(f"radapter {args.command}: unexpected options {list(overrides)}")
        return getattr(commands, f"cmd_{args.command}")(args, overrides)
    except (ConfigError, FileNotFoundError, FileExistsError, ValueError) as e:
        from ..data import CorruptImageError

        hint = (
            " (or run with --data.skip_corrupt true to skip and count unreadable images)"
            if isinstance(e, CorruptImageError)
            else ""
        )
        print(f"radapter {args.command}: error: {e}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
