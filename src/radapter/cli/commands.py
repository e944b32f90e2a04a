"""The subcommands behind :mod:`radapter.cli.main`."""

from __future__ import annotations

import copy
import json
import os

import torch

import radapter

from ..backbones.loading import LoadedModel
from ..config import DEFAULT_ALPHAS, PRESET_DIR, load_config
from ..data.transforms import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from ..errors import UserError
from ..reports import load_results, to_csv, to_markdown
from ..reports.plots import plot_id_vs_ood
from ..runs import Run, check_config, check_images, deploy_alpha, evaluate_run, load_backbone, run_config
from ..tasks import get_task, task_names
from .demo import run_demo
from .fewshot import cmd_fewshot  # noqa: F401  (radapter fewshot)
from .seg import cmd_seg  # noqa: F401  (radapter seg …)


def cmd_train(args, overrides) -> int:
    cfg = load_config(args.config, overrides)
    resume = "yes" if args.resume else "auto" if args.auto_resume else "no"
    rows = Run(cfg, resume=resume).run()
    _print_rows(rows)
    print(f"run written to {cfg.out}")
    return 0


def cmd_eval(args, overrides) -> int:
    _print_rows(evaluate_run(args.run, overrides, "eval.jsonl", alphas=args.alpha))
    return 0


def cmd_sweep(args, overrides) -> int:
    alphas = [float(a) for a in args.alphas.split(",")] if args.alphas else list(DEFAULT_ALPHAS)
    _print_rows(evaluate_run(args.run, overrides, "sweep.jsonl", alphas=alphas))
    return 0


class AdapterSource:
    """An adapted model from ``--run`` (its deploy α and EMA choice) or ``--adapter`` + ``--model``."""

    def __init__(self, args) -> None:
        if args.run:
            cfg = run_config(args.run)
            if cfg.method.name != "radapter":
                raise UserError(f"{args.run}: a {cfg.method.name!r} run has no adapter to merge")
            adapter_dir = os.path.join(args.run, "adapter")
            self.alpha, self.use_ema = deploy_alpha(cfg), cfg.method.radapter.use_ema
            self.loaded: LoadedModel = load_backbone(cfg)
        else:
            if not (args.adapter and args.model_spec):
                raise UserError("give --run RUN_DIR, or --adapter DIR and --model SPEC")
            adapter_dir = args.adapter
            self.loaded = radapter.load_model(args.model_spec, args.pretrained_tag)
            meta = radapter.adapters.io.read_adapter_config(adapter_dir)
            self.alpha = float(meta["config"].get("alpha", 0.5))
            self.use_ema = bool(meta.get("use_ema", True))
        if args.alpha is not None:
            self.alpha = float(args.alpha)
        self.model = radapter.load_adapter(self.loaded.model, adapter_dir).eval()
        radapter.set_alpha(self.model, self.alpha)

    def merged(self):
        if not 0.0 <= self.alpha <= 1.0:
            print(
                f"note: α = {self.alpha:g} is outside [0, 1]: the merged model extrapolates "
                f"{'beyond the fine-tuned model' if self.alpha > 1 else 'past the zero-shot model, away from the fine-tuned one'}"
            )
        return radapter.merge_r_adapter(self.model, alpha=self.alpha, use_ema=self.use_ema)


def cmd_merge(args, overrides) -> int:
    source = AdapterSource(args)
    radapter.export_merged(source.merged(), args.dest)
    print(f"merged model (α={source.alpha:g}, {'EMA' if source.use_ema else 'live'} weights) written to {args.dest}")
    return 0


def cmd_export(args, overrides) -> int:
    source = AdapterSource(args)
    radapter.save_adapter(source.model, os.path.join(args.dest, "adapter"), extra={"use_ema": source.use_ema})
    radapter.export_merged(source.merged(), os.path.join(args.dest, "merged"))
    print(f"adapter and merged model (α={source.alpha:g}) written to {args.dest}")
    return 0


@torch.no_grad()
def verify_merge(source: AdapterSource, batch: int = 4, seed: int = 0) -> dict:
    """Max |merged − unmerged| of image and text embeddings on a random batch, and NaN/inf checks, at the
    source's α and EMA choice (what ``merge`` writes)."""
    model, loaded = source.model, source.loaded
    merged = source.merged().eval()
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, loaded.image_size, loaded.image_size, generator=g)
    tokens = loaded.tokenizer(
        ["a photo of a cat.", "a sketch of a dog.", "an origami bird.", "a red car."][:batch] * max(1, batch // 4)
    )
    if not source.use_ema:
        # the unmerged reference must run on the live weights too: copy them into the EMA slots of a copy
        model = _live_as_ema(model)
    out = {}
    for name, fn, x in (("image", radapter.encode_image, images), ("text", radapter.encode_text, tokens)):
        a, b = fn(model, x), fn(merged, x)
        out[f"{name}_max_abs_diff"] = float((a - b).abs().max())
        out[f"{name}_finite"] = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
    out["alpha"] = source.alpha
    out["use_ema"] = source.use_ema
    return out


def _live_as_ema(model):
    clone = copy.deepcopy(model)
    for _, adapter in radapter.iter_adapters(clone):
        for name in adapter.param_names:
            getattr(adapter, f"ema_{name}").copy_(getattr(adapter, name))
    return clone.eval()


def cmd_verify(args, overrides) -> int:
    report = verify_merge(AdapterSource(args), args.batch)
    print(json.dumps(report, indent=2))
    ok = all(report[f"{t}_finite"] and report[f"{t}_max_abs_diff"] <= args.tolerance for t in ("image", "text"))
    print("OK" if ok else f"FAILED (tolerance {args.tolerance})")
    return 0 if ok else 1


def cmd_plot(args, overrides) -> int:
    rows = [r for path in args.results for r in load_results(path)]
    rows = [{k: v for k, v in r.items() if k != "config"} for r in rows]
    os.makedirs(args.dest, exist_ok=True)
    table = to_markdown(rows)
    with open(os.path.join(args.dest, "results.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    to_csv(rows, path=os.path.join(args.dest, "results.csv"))
    plot_id_vs_ood(rows, os.path.join(args.dest, "id_vs_ood.png"))
    print(table)
    print(f"written: {args.dest}/results.md, results.csv, id_vs_ood.png")
    return 0


def cmd_demo(args, overrides) -> int:
    run_demo(
        out=args.dest,
        seeds=1 if args.quick else args.seeds,
        quick=args.quick,
        size=args.size,
        precision=args.precision,
        threads=args.threads,
        tasks=args.tasks,
        workers=args.workers,
    )
    return 0


def cmd_presets(args, overrides) -> int:
    for name in sorted(os.listdir(PRESET_DIR)):
        if name.endswith(".yaml"):
            with open(os.path.join(PRESET_DIR, name), encoding="utf-8") as f:
                first = f.readline().strip().lstrip("# ")
            print(f"{name[:-5]:28s} {first}")
    return 0


def cmd_data(args, overrides) -> int:
    """``radapter data check``: decode every image of the run's training and evaluation sets, list the bad ones."""
    cfg = load_config(args.config, overrides)
    task_cls, _ = check_config(cfg)
    # the sets only need the input size for their transforms: no model (and no weights) is loaded
    stand_in = LoadedModel(None, None, 224, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    task = task_cls(cfg, stand_in, torch.device("cpu"), cfg.seed, progress=cfg.progress)
    sets = task.image_sets()
    bad = check_images(task, progress=cfg.progress)
    for name, dataset in sets.items():
        problems = bad.get(name, [])
        print(f"{name}: {len(dataset)} items, {len(problems)} unreadable")
        for path, reason in problems:
            print(f"  {path}: {reason}")
    return 1 if bad else 0


def cmd_tasks(args, overrides) -> int:
    for name in task_names():
        task = get_task(name)
        print(f"{name:16s} α={task.default_alpha:<4g} {task.description}")
    return 0


def _print_rows(rows: list[dict]) -> None:
    if not rows:
        return
    print(to_markdown([{k: v for k, v in r.items() if k != "config"} for r in rows]))
    chosen = next((r for r in rows if r.get("selected") == "holdout"), None)
    default = next((r for r in rows if r.get("default")), None)
    if chosen and default:
        metric = next(k.split(":", 1)[1] for k in chosen if k.startswith("holdout:"))
        idn = chosen.get("id_set")

        def get(row, key):
            return row.get(key, float("nan"))

        print(
            f"α chosen on the hold-out split: {chosen['alpha']} (hold-out {metric} {get(chosen, f'holdout:{metric}'):.1f}, "
            f"{idn} {get(chosen, f'{idn}:{metric}'):.1f}, avg OOD {get(chosen, f'avg_ood:{metric}'):.1f}); "
            f"deploy α {default['alpha']}: {idn} {get(default, f'{idn}:{metric}'):.1f}, "
            f"avg OOD {get(default, f'avg_ood:{metric}'):.1f}"
        )
