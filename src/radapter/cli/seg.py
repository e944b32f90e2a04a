"""``radapter seg``: train, evaluate and apply open-vocabulary segmenters (docs/segmentation.md).

* ``seg train [--config PRESET] [--section.key value …]`` — ``radapter train`` with ``task: segmentation`` (and
  ``data.kind: detectron2`` unless the preset or an override says otherwise);
* ``seg eval --run RUN --classes ade150 [--data ROOT | --images DIR --labels DIR]`` — re-evaluates a finished run
  (its checkpoint: CLIP state and head) on another dataset, at the run's α grid or ``--alpha``; ``--data`` is
  detectron2's dataset root, where the shipped class lists are found in CAT-Seg's prepared layout;
* ``seg predict IMAGE … --run RUN [--classes "cat;sofa, couch;floor"]`` — segments images with the exported
  segmenter (``OUT/segmenter/`` head + the exported CLIP) and writes a colour mask PNG with a legend. Classes are a
  shipped list, a .txt/.json file, or names separated by ``;`` (a comma inside a name separates synonyms).
"""

from __future__ import annotations

import argparse
import colorsys
import json
import os

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from PIL import Image

from ..adapters.io import load_adapter
from ..adapters.merge import merge_r_adapter
from ..adapters.r_adapter import set_alpha
from ..config import ConfigError, load_config, load_yaml, resolve_preset
from ..data.images import load_image
from ..data.segmentation import SegClassList, load_class_list, to_tensor_normalised
from ..errors import InputFileError, UserError
from ..reports import to_markdown
from ..runs import Run, evaluate_run, load_backbone, run_config
from ..segmentation import SegHead, SegHeadConfig, Segmenter, SegmenterConfig
from ..tasks.segmentation_data import CONFIG_FILE, HEAD_FILE, KNOWN_LAYOUTS, SEGMENTER_DIR
from ..utils import load_safetensors


def add_seg_parser(sub) -> None:
    """Registers ``radapter seg {train, eval, predict}`` on the top-level subparsers."""
    p = sub.add_parser("seg", help="open-vocabulary segmentation: seg train | seg eval | seg predict")
    seg = p.add_subparsers(dest="seg_command", required=True)

    t = seg.add_parser("train", help="train with task segmentation (overrides: --section.key value)")
    t.add_argument("--config", help="YAML preset file or built-in preset name (see `radapter presets`)")
    resume = t.add_mutually_exclusive_group()
    resume.add_argument("--resume", action="store_true", help="continue the run in --out")
    resume.add_argument("--auto-resume", action="store_true", help="continue the run in --out if it has a checkpoint")

    e = seg.add_parser("eval", help="evaluate a finished segmentation run on a dataset")
    e.add_argument("--run", required=True, help="run directory")
    e.add_argument(
        "--classes", action="append", required=True, help="class list (ade150, …, or a file); repeatable with --data"
    )
    e.add_argument("--data", help="detectron2 dataset root holding the shipped lists in CAT-Seg's layout")
    e.add_argument("--images", help="image folder (with --labels, instead of --data)")
    e.add_argument("--labels", help="label folder, same file stems as the images")
    e.add_argument("--name", help="name of the set in the results (default: the class list's)")
    e.add_argument("--ignore-value", type=int, default=None, help="ignore value (default: the class list's)")
    e.add_argument("--miou-mode", choices=["present", "predicted"], default=None)
    e.add_argument("--seen", default="train", help="seen vocabulary for seen/unseen mIoU: train (default) or none")
    e.add_argument("--sliding-window", action=argparse.BooleanOptionalAction, default=None)
    e.add_argument("--pooling-size", type=int, default=None, help="head's class-attention pooling (CAT-Seg eval: 1)")
    e.add_argument(
        "--ood", action=argparse.BooleanOptionalAction, default=None, help="default: unless it is the train list"
    )
    e.add_argument("--alpha", type=float, action="append", help="α to evaluate (repeatable; default eval.alphas)")

    pr = seg.add_parser("predict", help="segment images; writes a colour mask PNG with a legend per image")
    pr.add_argument("images", nargs="+", help="image file(s)")
    pr.add_argument("--run", required=True, help="run directory (its OUT/segmenter and exported CLIP)")
    pr.add_argument("--classes", default=None, help='class list, file, or "a;b, synonym;c" (default: training classes)')
    pr.add_argument(
        "--out", dest="dest", default=None, help="output PNG (one image) or folder (default RUN/predictions)"
    )
    pr.add_argument("--alpha", type=float, default=None, help="R-Adapter runs: merge at this α instead of the deployed")
    pr.add_argument("--labels-out", default=None, help="also write the class ids as a PNG (16-bit when > 255 classes)")
    pr.add_argument("--sliding-window", action=argparse.BooleanOptionalAction, default=None)
    pr.add_argument("--device", default="cpu")


def _print_rows(rows: list[dict]) -> None:
    if rows:
        print(to_markdown([{k: v for k, v in r.items() if k != "config"} for r in rows]))


def cmd_seg(args, overrides) -> int:
    if args.seg_command != "train" and overrides:
        raise ConfigError(f"radapter seg {args.seg_command}: unexpected options {list(overrides)}")
    return {"train": seg_train, "eval": seg_eval, "predict": seg_predict}[args.seg_command](args, overrides)


# --- train ---------------------------------------------------------------------------------------------
def seg_train(args, overrides) -> int:
    overrides = dict(overrides)
    if overrides.setdefault("task", "segmentation") != "segmentation":
        raise ConfigError(f"radapter seg train: --task {overrides['task']!r}; use `radapter train` for other tasks")
    preset = load_yaml(resolve_preset(args.config)) if args.config else {}
    if "data.kind" not in overrides and "kind" not in (preset.get("data") or {}):
        overrides["data.kind"] = "detectron2"
    if preset.get("task", "segmentation") != "segmentation":
        raise ConfigError(f"{args.config}: a {preset['task']!r} preset; use `radapter train --config {args.config}`")
    cfg = load_config(args.config, overrides)
    resume = "yes" if args.resume else "auto" if args.auto_resume else "no"
    _print_rows(Run(cfg, resume=resume).run())
    print(f"run written to {cfg.out}")
    return 0


# --- eval ----------------------------------------------------------------------------------------------
def eval_set_entries(args, train_list: str | None) -> list[dict]:
    """``data.eval_sets`` entries from ``seg eval``'s options."""
    if bool(args.images) != bool(args.labels):
        raise UserError("radapter seg eval: give --images and --labels together (or --data ROOT)")
    if bool(args.data) == bool(args.images):
        raise UserError("radapter seg eval: give --data ROOT (CAT-Seg's layout) or --images DIR --labels DIR")
    if args.images and len(args.classes) > 1:
        raise UserError("radapter seg eval: one --classes per --images/--labels set")
    entries = []
    for spec in args.classes:
        if args.data:
            key = load_class_list(spec).name if not spec.endswith((".txt", ".json")) else spec
            if key not in KNOWN_LAYOUTS:
                raise UserError(
                    f"radapter seg eval: no known layout for {spec!r} under --data; known: {', '.join(KNOWN_LAYOUTS)} "
                    "(or give --images and --labels)"
                )
            image_dir, label_dir, unpaired = KNOWN_LAYOUTS[key]
            image_dir, label_dir = os.path.join(args.data, image_dir), os.path.join(args.data, label_dir)
        else:
            image_dir, label_dir, unpaired = args.images, args.labels, True
            key = os.path.splitext(os.path.basename(spec))[0] if spec.endswith((".txt", ".json")) else spec
        entry = {"name": args.name or key, "image_dir": image_dir, "label_dir": label_dir, "classes": spec}
        entry["allow_unpaired"] = unpaired
        entry["ood"] = args.ood if args.ood is not None else key != train_list
        if args.seen != "none":
            entry["seen"] = args.seen
        for opt, key_name in (("ignore_value", "ignore_value"), ("miou_mode", "miou_mode")):
            if getattr(args, opt) is not None:
                entry[key_name] = getattr(args, opt)
        if args.sliding_window is not None:
            entry["sliding_window"] = args.sliding_window
        if args.pooling_size is not None:
            entry["pooling_size"] = args.pooling_size
        entries.append(entry)
    return entries


def seg_eval(args, overrides) -> int:
    cfg = run_config(args.run)
    if cfg.task != "segmentation":
        raise UserError(f"{args.run}: a {cfg.task!r} run; use `radapter eval` for it")
    record_path = os.path.join(args.run, "task.json")
    record = json.load(open(record_path, encoding="utf-8")) if os.path.isfile(record_path) else {}
    entries = eval_set_entries(args, record.get("class_list"))
    if cfg.data.kind == "world":
        raise UserError(f"{args.run}: a world run evaluates on its own scenes: use `radapter eval --run {args.run}`")
    name = "seg_eval_" + "_".join(e["name"] for e in entries) + ".jsonl"
    rows = evaluate_run(args.run, {"data.eval_sets": entries}, name, alphas=args.alpha)
    _print_rows(rows)
    print(f"results written to {os.path.join(args.run, name)}")
    return 0


# --- predict -------------------------------------------------------------------------------------------
def parse_classes(spec: str) -> SegClassList:
    """A shipped list name, a .txt/.json file, or names separated by ``;`` (``"cat;sofa, couch;floor"``: a comma
    inside a name separates synonyms, so ``"cat,sofa,floor"`` would be one class)."""
    if ";" in spec:
        return SegClassList.from_names([n for n in spec.split(";") if n.strip()], name="custom")
    try:
        return load_class_list(spec)
    except KeyError as e:
        raise UserError(
            f"--classes {spec!r}: not a shipped class list or a .txt/.json file; separate class names with ';' "
            '(e.g. "cat;sofa, couch;floor")'
        ) from e


def _load_merged_weights(model: torch.nn.Module, directory: str) -> None:
    files = sorted(f for f in os.listdir(directory) if f.endswith(".safetensors") and "head" not in f)
    if not files:
        raise InputFileError(f"{directory}: no model weights (*.safetensors)")
    state = {}
    for f in files:
        state.update(load_safetensors(os.path.join(directory, f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise InputFileError(
            f"{directory}: the exported weights do not fit the run's base model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )


def load_segmenter(run_dir: str, alpha: float | None = None, device: str = "cpu") -> tuple[Segmenter, dict]:
    """The deployed segmenter of a finished run: its exported CLIP (``OUT/merged``, or the base model for
    ``frozen``; with ``alpha``, an R-Adapter run's adapter merged at that α) and its exported head.

    Returns:
        The segmenter (eval mode) and ``segmenter.json``.
    """
    cfg = run_config(run_dir)
    seg_dir = os.path.join(run_dir, SEGMENTER_DIR)
    meta_path = os.path.join(seg_dir, CONFIG_FILE)
    if not os.path.isfile(meta_path):
        raise InputFileError(f"{run_dir}: no exported segmenter ({meta_path}); is it a finished segmentation run?")
    with open(meta_path, encoding="utf-8") as f:
        meta = json.load(f)
    loaded = load_backbone(cfg, device)
    clip = loaded.model
    if alpha is not None:
        adapter = os.path.join(run_dir, "adapter")
        if not os.path.isdir(adapter):
            raise UserError(f"--alpha: {run_dir} is a {cfg.method.name!r} run without an R-Adapter to re-scale")
        clip = load_adapter(clip, adapter)
        set_alpha(clip, alpha)
        clip = merge_r_adapter(clip, alpha=alpha, use_ema=cfg.method.radapter.use_ema)
    elif os.path.isdir(os.path.join(run_dir, "merged")):
        _load_merged_weights(clip, os.path.join(run_dir, "merged"))
    config = SegmenterConfig(**meta["segmenter"])
    head = SegHead(SegHeadConfig(**meta["segmenter"]["head"]), meta["embed_dim"], meta["vision_width"])
    head.load_state_dict(load_safetensors(os.path.join(seg_dir, HEAD_FILE)))
    seg = Segmenter(clip.to(device).eval(), loaded.tokenizer, config, head=head).eval()
    seg.mean, seg.std = loaded.mean, loaded.std
    return seg, meta


def palette(n: int) -> np.ndarray:
    """[n, 3] uint8 colours, far apart for neighbouring indices (golden-ratio hues, alternating value)."""
    out = []
    for i in range(n):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.75, 0.95 if i % 2 == 0 else 0.7)
        out.append((round(255 * r), round(255 * g), round(255 * b)))
    return np.array(out, dtype=np.uint8)


def render_prediction(image: np.ndarray, labels: np.ndarray, names, path: str, max_legend: int = 24) -> None:
    """The image, its colour mask and a legend of the predicted classes by area (matplotlib's object API: no
    pyplot state)."""
    colours = palette(len(names))
    mask = colours[labels]
    ids, counts = np.unique(labels, return_counts=True)
    order = ids[np.argsort(-counts)]
    share = dict(zip(ids.tolist(), (100.0 * counts / labels.size).tolist()))
    h, w = labels.shape
    scale = 4.0 / max(h, w)
    fig = Figure(figsize=(2 * w * scale + 3.2, max(h * scale, 2.5)), dpi=120)
    FigureCanvasAgg(fig)
    for i, (picture, title) in enumerate(((image, "image"), (mask, "prediction"))):
        ax = fig.add_axes([i * 0.38 + 0.01, 0.02, 0.36, 0.9])
        ax.imshow(picture)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    handles = [Patch(color=colours[k] / 255.0, label=f"{names[k]} ({share[k]:.1f} %)") for k in order[:max_legend]]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(0.77, 0.5), fontsize=8, frameon=False)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)


def seg_predict(args, overrides) -> int:
    seg, meta = load_segmenter(args.run, args.alpha, args.device)
    classes = parse_classes(args.classes) if args.classes else SegClassList.from_names(meta["train_classes"])
    if args.sliding_window is not None:
        seg.config.sliding_window = args.sliding_window
    p2c = torch.tensor(classes.prompt_to_class)
    names = list(classes.primary_names())
    if args.dest and len(args.images) > 1 and args.dest.lower().endswith(".png"):
        raise UserError("radapter seg predict: --out must be a folder for several images")
    for path in args.images:
        image = load_image(path).convert("RGB")
        x = to_tensor_normalised(image, seg.mean, seg.std).to(args.device)
        (scores,) = seg.predict([x], classes.prompts)
        labels = p2c[scores.argmax(0).cpu()].numpy()
        stem = os.path.splitext(os.path.basename(path))[0]
        if args.dest and args.dest.lower().endswith(".png"):
            out = args.dest
        else:
            out = os.path.join(args.dest or os.path.join(args.run, "predictions"), f"{stem}.png")
        render_prediction(np.asarray(image), labels, names, out)
        if args.labels_out:
            ids = labels.astype(np.uint16 if classes.num_classes > 255 else np.uint8)
            target = args.labels_out if len(args.images) == 1 else os.path.join(args.labels_out, f"{stem}.png")
            os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
            Image.fromarray(ids).save(target)
        print(f"{path}: {out} ({', '.join(names[k] for k in np.unique(labels)[:10])})")
    return 0
