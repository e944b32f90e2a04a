"""Image–text retrieval (the paper's COCO → Flickr30k protocol; default deploy α 0.8).

Training pairs are (image, one of its captions drawn with the item's seed); the MPM-NCE group id is the image,
so the other captions of the same image in the gathered batch are positives (the authors key them by COCO image
id). Evaluation encodes every image and every caption of a set once and reports, per set, image→text and
text→image Recall@1/5/10, RSUM, median and mean rank (keys spell the direction out:
``<set>:image_to_text:R@1``, ``<set>:text_to_image:R@5``, …), the counts ``n_images``/``n_texts`` (COCO 5k test:
5,000 / 25,000; Flickr30k 1k test: 1,000 / 5,000 — a wrong split shows at once), and the primary metric
``<set>:R@1``, the mean of both directions' R@1, which the α sweep, tables and the ID-vs-OOD plot use.
CLIP_benchmark calls text→image "image_retrieval" and image→text "text_retrieval"; we spell out the direction.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from ..backbones import encode_image, encode_text
from ..config import ConfigError, build_dataclass
from ..data.retrieval import ImageTextSet, RetrievalImages, RetrievalTrainPairs, load_image_text_set
from ..data.transforms import eval_transform, train_transform
from ..data.world import images_to_tensor
from ..data.world.instances import retrieval_benchmark
from ..evaluation.retrieval import retrieval_metrics
from ..training.precision import autocast_dtype
from .base import CAPTIONS, GROUPS, Batch, Scorer, Task, build_entries, register_task

log = logging.getLogger("radapter")

DATA_KINDS = ("auto", "karpathy", "coco", "flickr_txt", "csv", "jsonl", "world")
PRIMARY = "R@1"


@dataclass
class RetrievalEvalSetConfig:
    """One retrieval evaluation set: an annotation file (and the folder of its images)."""

    name: str = field(metadata={"help": "name in results and tables (keys '<name>:image_to_text:R@1', …)"})
    path: str = field(
        metadata={"help": "annotation file: Karpathy JSON, CLIP_benchmark COCO JSON / Flickr TXT, CSV, JSONL"}
    )
    image_root: str | None = field(default=None, metadata={"help": "folder of the images (JSON and TXT formats)"})
    kind: str = field(default="auto", metadata={"help": f"format: {' | '.join(DATA_KINDS[:-1])}"})
    split: str = field(default="test", metadata={"help": "Karpathy split(s), e.g. 'test' or 'train+restval'"})
    captions_per_image: int | str = field(default=5, metadata={"help": "captions per image (VSE++: 5) or 'all'"})
    ood: bool | None = field(default=None, metadata={"help": "counts in avg OOD (default: all but the first set)"})

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS[:-1]:
            raise ConfigError(f"eval set {self.name!r}: kind {self.kind!r} is not one of {DATA_KINDS[:-1]}")


class WorldPairs(Dataset):
    """The built-in world's images (uint8, already the model's input size) as normalised tensors."""

    def __init__(self, data: ImageTextSet, mean, std) -> None:
        self.data, self.mean, self.std = data, mean, std

    def __len__(self) -> int:
        return self.data.n_images

    def __getitem__(self, index: int):
        return images_to_tensor(self.data.pixels[index : index + 1], self.mean, self.std)[0], index


class WorldTrainPairs(RetrievalTrainPairs):
    """Training pairs of the world: no augmentation (the classification world trains without it too)."""

    def __init__(self, data: ImageTextSet, mean, std) -> None:
        super().__init__(data, None)
        self.images = WorldPairs(data, mean, std)

    def __getitem__(self, key):
        _, caption, group = super().__getitem__(key)
        return self.images[key[0]][0], caption, group


def _csv_group_key(path: str, key: str) -> str | None:
    """The CSV's group column when its header has ``key`` (rows of a group are one image), else None."""
    if not str(path).lower().endswith((".csv", ".tsv")) or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        header = f.readline()
    return key if key in header.replace(",", "\t").strip().split("\t") else None


def collate_pairs(items: Sequence[tuple]) -> Batch:
    images, captions, groups = zip(*items)
    return Batch(images=torch.stack(images), groups=torch.tensor(groups, dtype=torch.long), texts=list(captions))


@functools.lru_cache(maxsize=1)
def _world_sets(seed: int, n_train: int, n_test: int, captions_per_image: int) -> dict[str, ImageTextSet]:
    """The world retrieval benchmark as image–text sets (kept for the next run in this process)."""
    splits = retrieval_benchmark(seed, n_train=n_train, n_test=n_test, captions_per_image=captions_per_image)
    return {name: s.to_image_text_set(name) for name, s in splits.items()}


@register_task
class RetrievalTask(Task):
    key = "retrieval"
    default_alpha = 0.8
    provides = frozenset({CAPTIONS, GROUPS})
    metric = PRIMARY
    description = "image-text retrieval: R@1/5/10 both directions per eval set, R@1 (mean of both) as the metric"

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.data.kind not in DATA_KINDS:
            raise ConfigError(f"data.kind: {cfg.data.kind!r} is not a retrieval source; expected one of {DATA_KINDS}")
        if cfg.data.kind != "world" and not cfg.data.eval_sets:
            raise ConfigError("data.eval_sets: retrieval needs at least one evaluation set (e.g. COCO 5k test)")
        cls._eval_configs(cfg.data.eval_sets)

    @staticmethod
    def _eval_configs(entries) -> list[RetrievalEvalSetConfig]:
        sets = build_entries(RetrievalEvalSetConfig, entries, "data.eval_sets", build_dataclass)
        for i, s in enumerate(sets):
            if s.ood is None:
                s.ood = i > 0  # the first set is the ID one (COCO), the others shifted (Flickr30k)
        return sets

    def setup(self) -> None:
        cfg = self.cfg.data
        b = self.backbone
        pp = (b.info or {}).get("preprocess_cfg", {})
        self.tf_eval = eval_transform(b.image_size, mean=b.mean, std=b.std, resize_mode=pp.get("resize_mode"))
        self.tf_train = train_transform(
            b.image_size, scale=tuple(cfg.train_scale), hflip=cfg.hflip, mean=b.mean, std=b.std
        )
        r = cfg.retrieval
        if cfg.kind == "world":
            w = cfg.world
            sets = _world_sets(w.seed, w.train, w.test, int(r.captions_per_image))
            self.train_set = None if self.eval_only else sets["train"]
            self.eval_sets = [(s, name.startswith("ood_")) for name, s in sets.items() if name != "train"]
            self.world = True
            return
        self.world = False
        self.train_set = None
        if not self.eval_only:
            if not cfg.train:
                raise ConfigError("data.train: the training annotation file (Karpathy JSON, caption CSV, JSONL, …)")
            self.train_set = self._read(cfg.train, cfg.kind, r.image_root, r.split, r.captions_per_image, "train")
            log.info("retrieval train: %s", self.train_set.describe())
        self.eval_sets = []
        for c in self._eval_configs(cfg.eval_sets):
            data = self._read(c.path, c.kind, c.image_root, c.split, c.captions_per_image, c.name)
            log.info("retrieval eval %s: %s", c.name, data.describe())
            self.eval_sets.append((data, bool(c.ood)))

    def _read(self, path, kind, image_root, split, captions_per_image, name) -> ImageTextSet:
        """Any supported annotation file (the CSV's separator is read from its header; its group column is
        ``data.csv.label_key`` when the file has one)."""
        c = self.cfg.data.csv
        return load_image_text_set(
            os.path.expanduser(path),
            None if image_root is None else os.path.expanduser(image_root),
            kind=kind,
            split=split,
            captions_per_image=captions_per_image,
            name=name,
            img_key=c.img_key,
            caption_key=c.caption_key,
            group_key=_csv_group_key(path, c.label_key),
        )

    # --- training ----------------------------------------------------------------------------------
    def train_size(self) -> int:
        return self.train_set.n_images

    def train_dataset(self) -> Dataset:
        if self.world:
            return WorldTrainPairs(self.train_set, self.backbone.mean, self.backbone.std)
        return RetrievalTrainPairs(self.train_set, self.tf_train)

    def collate(self, items) -> Batch:
        return collate_pairs(items)

    # --- evaluation --------------------------------------------------------------------------------
    @torch.no_grad()
    def _features(self, model, data: ImageTextSet) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        amp = autocast_dtype(cfg.optim.precision, self.device)
        images = (
            WorldPairs(data, self.backbone.mean, self.backbone.std)
            if self.world
            else RetrievalImages(data, self.tf_eval)
        )
        loader = DataLoader(images, batch_size=cfg.eval.batch_size, num_workers=cfg.data.workers)
        feats = []
        for x, _ in loader:
            with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
                feats.append(encode_image(model, x.to(self.device), normalize=True).float())
        texts = data.texts
        tfeats = []
        for start in range(0, len(texts), cfg.eval.batch_size):
            tokens = self.backbone.tokenizer(texts[start : start + cfg.eval.batch_size])
            tokens = tokens.to(self.device) if hasattr(tokens, "to") else tokens
            with torch.autocast(self.device.type, dtype=amp, enabled=amp is not None):
                tfeats.append(encode_text(model, tokens, normalize=True).float())
        return torch.cat(feats), torch.cat(tfeats)

    def evaluate(self, scorer: Scorer) -> dict[str, Any]:
        scorer.model.eval()
        out: dict[str, Any] = {}
        for data, _ in self.eval_sets:
            f, g = self._features(scorer.model, data)
            metrics = retrieval_metrics(f, g, data.text_to_image)
            out.update({f"{data.name}:{k}": v for k, v in metrics.items()})
            out[f"{data.name}:{PRIMARY}"] = metrics[f"mean:{PRIMARY}"]
        return out

    def summarize(self, results: dict[str, Any]) -> dict[str, Any]:
        ids = [d.name for d, ood in self.eval_sets if not ood]
        ood = [d.name for d, o in self.eval_sets if o]
        out: dict[str, Any] = {"id_set": ids[0] if ids else None, "ood_sets": ood}
        if ood:
            out[f"avg_ood:{PRIMARY}"] = sum(results[f"{n}:{PRIMARY}"] for n in ood) / len(ood)
        return out

    def image_sets(self) -> dict[str, Any]:
        if self.world:
            return {}  # generated in memory: nothing on disk to check
        sets = {} if self.train_set is None else {"train": self.train_set.image_paths}
        return {**sets, **{d.name: d.image_paths for d, _ in self.eval_sets}}

    def describe(self) -> dict[str, Any]:
        out = {d.name: d.counts() for d, _ in self.eval_sets}
        if self.train_set is not None:
            out["train"] = self.train_set.counts()
        return out
