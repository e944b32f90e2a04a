"""``radapter`` command line: train, eval, sweep, merge, export, verify, plot, demo, presets, tasks.

Every command is callable in-process (``main(["train", ...])``), which is how the tests drive it.
``--config PRESET`` gives defaults (a YAML file or a built-in preset name), ``--dotted.key value`` overrides
single fields; ``--model``, ``--pretrained``, ``--method``, ``--task``, ``--out``, ``--seed`` and ``--device``
are shortcuts for ``model.name``, ``model.pretrained``, ``method.name``, ``task``, ``out``, ``seed``,
``device``. Problems with the input (a :class:`~radapter.errors.UserError`, a missing file) are one line on
stderr and exit code 2; a bug keeps its traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

from ..config import ConfigError, parse_value
from ..data import CorruptImageError
from ..errors import UserError
from ..training.checkpoint import latest_checkpoint
from ..utils.perf import use_fast_frozen_linear
from . import commands
from .fewshot import add_fewshot_parser
from .seg import add_seg_parser

SHORTCUTS = {
    "model": "model.name",
    "pretrained": "model.pretrained",
    "method": "method.name",
    "task": "task",
    "out": "out",
    "seed": "seed",
    "device": "device",
    "threads": "threads",
}
# commands that take --section.key overrides
WITH_OVERRIDES = ("train", "eval", "sweep", "data", "fewshot", "seg")


def parse_overrides(extra: list[str]) -> dict[str, object]:
    """``["--optim.lr", "1e-3", "--model", "ViT-B-16"]`` → ``{"optim.lr": "1e-3", "model.name": "ViT-B-16"}``
    (values are read as YAML; numbers in the forms YAML leaves as strings are converted by the config)."""
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


def _add_run(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--run", required=True, help=f"run directory to {what}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radapter", description="R-Adapter: robust, efficient CLIP fine-tuning")
    parser.add_argument("-v", "--verbose", action="store_true", help="radapter's own debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="fine-tune, evaluate, export (overrides: --section.key value)")
    p.add_argument("--config", help="YAML preset file or built-in preset name (see `radapter presets`)")
    resume = p.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue the run in --out (it must have a checkpoint)")
    resume.add_argument(
        "--auto-resume", action="store_true", help="continue the run in --out if it has a checkpoint, else start it"
    )

    p = sub.add_parser("eval", help="evaluate a finished run (optionally at other α / on other eval sets)")
    _add_run(p, "evaluate")
    p.add_argument("--alpha", type=float, action="append", help="α to evaluate (repeatable; default: eval.alphas)")

    p = sub.add_parser("sweep", help="α sweep of a finished run (default grid 0, 0.1, …, 1; writes sweep.jsonl)")
    _add_run(p, "sweep")
    p.add_argument("--alphas", default=None, help="comma-separated α grid (default: 0,0.1,…,1)")

    for name, help_text in (
        ("merge", "merge a run's adapter at α into a plain model in the backbone's format"),
        ("export", "write a run's adapter folder and its merged model at α"),
        ("verify", "merged vs unmerged max |difference| and a NaN check on a batch"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--run", help="run directory (or give --adapter and --model)")
        p.add_argument("--adapter", help="adapter folder (adapter_config.json + adapter_model.safetensors)")
        p.add_argument("--model", dest="model_spec", help="base model when using --adapter")
        p.add_argument("--pretrained", dest="pretrained_tag", default=None)
        p.add_argument("--alpha", type=float, default=None, help="re-scaling α (default: the run's deploy α)")
        if name == "verify":
            p.add_argument("--batch", type=int, default=4)
            p.add_argument("--tolerance", type=float, default=1e-4)
        else:
            p.add_argument("--out", dest="dest", required=True, help="output directory")

    p = sub.add_parser("plot", help="table + ID-vs-OOD plot from results.jsonl files")
    p.add_argument("results", nargs="+")
    p.add_argument("--out", dest="dest", required=True, help="output directory")

    p = sub.add_parser("demo", help="the offline benchmark: every method on the built-in world, in minutes")
    p.add_argument("--out", dest="dest", default="runs/demo")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="1 seed, fewer rows (≈3 min)")
    p.add_argument("--size", choices=["full", "ci"], default="full", help=argparse.SUPPRESS)
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--threads", type=int, default=None, help="torch threads per run (default 1)")
    p.add_argument("--workers", type=int, default=None, help="runs trained side by side (default: one per core)")
    p.add_argument("--task", action="append", dest="tasks", help="run only this task's part (repeatable)")

    add_fewshot_parser(sub)  # fewshot base2new / fewshot xd

    p = sub.add_parser("data", help="check a run's data: decode every training and evaluation image")
    p.add_argument("action", choices=["check"])
    p.add_argument("--config", help="YAML preset file or built-in preset name (plus --section.key overrides)")

    add_seg_parser(sub)  # radapter seg train | eval | predict
    sub.add_parser("presets", help="list the built-in presets")
    sub.add_parser("tasks", help="list the tasks (task: KEY in a config)")
    return parser


def _setup_logging(verbose: bool) -> None:
    """radapter's messages at INFO (DEBUG with -v); other libraries (PIL, open_clip…) stay at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    logging.getLogger("radapter").setLevel(logging.DEBUG if verbose else logging.INFO)


def _interrupted(args, argv: list[str]) -> int:
    """One line instead of a traceback: where the last checkpoint is and the command that resumes."""
    out = _train_out(argv)
    ckpt = latest_checkpoint(out) if out else None
    cmd = [a for a in argv if a not in ("--resume", "--auto-resume")] + ["--resume"]
    if ckpt:
        print(
            f"\nradapter {args.command}: interrupted; last checkpoint {ckpt}. Resume with: radapter {shlex.join(cmd)}",
            file=sys.stderr,
        )
    else:
        print(f"\nradapter {args.command}: interrupted before the first checkpoint; nothing to resume", file=sys.stderr)
    return 130


def _train_out(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--out="):
            return a.split("=", 1)[1]
    try:
        parser_args, extra = build_parser().parse_known_args(argv)
        from_config = commands.load_config(parser_args.config, parse_overrides(extra))
        return from_config.out
    except (UserError, SystemExit):
        return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    _setup_logging(args.verbose)
    use_fast_frozen_linear()  # no result changes; see radapter.utils.perf
    try:
        overrides = parse_overrides(extra)
        if overrides and args.command not in WITH_OVERRIDES:
            raise ConfigError(f"radapter {args.command}: unexpected options {list(overrides)}")
        return getattr(commands, f"cmd_{args.command}")(args, overrides)
    except KeyboardInterrupt:
        trains = args.command == "train" or getattr(args, "seg_command", None) == "train"  # seg train too
        if not trains or os.environ.get("RANK", "0") != "0":
            raise
        return _interrupted(args, argv)
    except (UserError, FileNotFoundError, FileExistsError) as e:
        hint = (
            " (or run with --data.skip_corrupt true to skip and count unreadable images)"
            if isinstance(e, CorruptImageError)
            else ""
        )
        print(f"radapter {args.command}: error: {e}{hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
