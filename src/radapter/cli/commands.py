"""The subcommands behind :mod:`radapter.cli.main`."""

from __future__ import annotations

import json
import os

import torch

from ..config import PRESET_DIR, load_config, load_yaml


def _run_config(run: str, overrides: dict):
    path = os.path.join(run, "config.yaml")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: not a radapter run directory (no config.yaml)")
    data = load_yaml(path)
    from ..config import RunConfig, build_dataclass, set_dotted

    for k, v in overrides.items():
        set_dotted(data, k, v)
    data["out"] = run
    return build_dataclass(RunConfig, data)


def cmd_train(args, overrides) -> int:
    from ..training import Trainer

    cfg = load_config(args.config, overrides)
    rows = Trainer(cfg, resume=args.resume, stop_after=args.stop_after).run()
    _print_rows(rows)
    print(f"run written to {cfg.out}")
    return 0


def _evaluate_run(run: str, overrides: dict, results_name: str) -> list[dict]:
    from ..training import Trainer

    cfg = _run_config(run, overrides)
    trainer = Trainer(cfg)
    trainer.setup(eval_only=True)
    return trainer.evaluate(getattr(trainer, "trained_step", 0), results_name=results_name, export=False)


def cmd_eval(args, overrides) -> int:
    if args.alpha:
        overrides = {**overrides, "eval.alphas": args.alpha}
    _print_rows(_evaluate_run(args.run, overrides, "eval.jsonl"))
    return 0


def cmd_sweep(args, overrides) -> int:
    if args.alphas:
        overrides = {**overrides, "eval.alphas": [float(a) for a in args.alphas.split(",")]}
    _print_rows(_evaluate_run(args.run, overrides, "sweep.jsonl"))
    return 0


def _adapted_model(args):
    """(adapted model, loaded) from --run or --adapter + --model."""
    import radapter

    if args.run:
        cfg = _run_config(args.run, {})
        if cfg.method.name != "radapter":
            raise ValueError(f"{args.run}: a {cfg.method.name!r} run has no adapter to merge")
        adapter_dir = os.path.join(args.run, "adapter")
        spec, tag = cfg.model.name, cfg.model.pretrained
    else:
        if not (args.adapter and args.model_spec):
            raise ValueError("give --run RUN_DIR, or --adapter DIR and --model SPEC")
        adapter_dir, spec, tag = args.adapter, args.model_spec, args.pretrained_tag
    loaded = radapter.load_model(spec, tag)
    model = radapter.load_adapter(loaded.model, adapter_dir).eval()
    return model, loaded


def cmd_merge(args, overrides) -> int:
    import radapter

    model, _ = _adapted_model(args)
    merged = radapter.merge_r_adapter(model, alpha=args.alpha)
    radapter.export_merged(merged, args.dest)
    print(f"merged model (α={merged.radapter_merged['alpha']}) written to {args.dest}")
    return 0


def cmd_export(args, overrides) -> int:
    import radapter

    model, _ = _adapted_model(args)
    radapter.save_adapter(model, os.path.join(args.dest, "adapter"))
    merged = radapter.merge_r_adapter(model, alpha=args.alpha)
    radapter.export_merged(merged, os.path.join(args.dest, "merged"))
    print(f"adapter and merged model (α={merged.radapter_merged['alpha']}) written to {args.dest}")
    return 0


@torch.no_grad()
def verify_merge(model, loaded, alpha=None, batch: int = 4, seed: int = 0) -> dict:
    """Max |merged − unmerged| of image and text embeddings on a random batch, and NaN/inf checks."""
    import radapter

    if alpha is not None:
        radapter.set_alpha(model, alpha)
    merged = radapter.merge_r_adapter(model, alpha=alpha).eval()
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, loaded.image_size, loaded.image_size, generator=g)
    tokens = loaded.tokenizer(
        ["a photo of a cat.", "a sketch of a dog.", "an origami bird.", "a red car."][:batch] * max(1, batch // 4)
    )
    out = {}
    for name, fn, x in (("image", radapter.encode_image, images), ("text", radapter.encode_text, tokens)):
        a, b = fn(model, x), fn(merged, x)
        out[f"{name}_max_abs_diff"] = float((a - b).abs().max())
        out[f"{name}_finite"] = bool(torch.isfinite(a).all() and torch.isfinite(b).all())
    out["alpha"] = merged.radapter_merged["alpha"]
    return out


def cmd_verify(args, overrides) -> int:
    model, loaded = _adapted_model(args)
    report = verify_merge(model, loaded, args.alpha, args.batch)
    print(json.dumps(report, indent=2))
    ok = all(report[f"{t}_finite"] and report[f"{t}_max_abs_diff"] <= args.tolerance for t in ("image", "text"))
    print("OK" if ok else f"FAILED (tolerance {args.tolerance})")
    return 0 if ok else 1


def cmd_plot(args, overrides) -> int:
    from ..reports import load_results, to_csv, to_markdown
    from ..reports.plots import plot_id_vs_ood

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
    from .demo import run_demo

    run_demo(
        out=args.dest, seeds=1 if args.quick else args.seeds, quick=args.quick, size=args.size, precision=args.precision
    )
    return 0


def cmd_presets(args, overrides) -> int:
    for name in sorted(os.listdir(PRESET_DIR)):
        if name.endswith(".yaml"):
            with open(os.path.join(PRESET_DIR, name), encoding="utf-8") as f:
                first = f.readline().strip().lstrip("# ")
            print(f"{name[:-5]:28s} {first}")
    return 0


def _print_rows(rows: list[dict]) -> None:
    if not rows:
        return
    from ..reports import to_markdown

    print(to_markdown([{k: v for k, v in r.items() if k != "config"} for r in rows]))
    chosen = next((r for r in rows if r.get("selected") == "holdout"), None)
    default = next((r for r in rows if r.get("default")), None)
    if chosen and default:
        idn = chosen.get("id_set")
        print(
            f"α chosen on the hold-out split: {chosen['alpha']} (hold-out top-1 {chosen['holdout:top1']:.1f}, "
            f"{idn} {chosen.get(f'{idn}:top1', float('nan')):.1f}, avg OOD {chosen.get('avg_ood:top1', float('nan')):.1f}); "
            f"default α {default['alpha']}: {idn} {default.get(f'{idn}:top1', float('nan')):.1f}, "
            f"avg OOD {default.get('avg_ood:top1', float('nan')):.1f}"
        )
