"""The run configuration: one typed dataclass per part of a run, nested into :class:`RunConfig`.

Sections: ``model`` (which backbone), ``task`` (which task: classification, retrieval, …), ``data`` (the train
source and its own settings, evaluation sets), ``optim`` (the loop), ``method`` (``method.name`` plus one
section per method, as peft gives each tuner its own config: ``method.radapter.*``, ``method.lora.*``, …) and
``eval``. The deploy α has one owner, ``eval.alpha`` (default: the task's, 0.5 classification, 0.8 retrieval,
0.4 segmentation); ``eval.alphas`` is the sweep evaluated after training.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any

from ..adapters.config import RAdapterConfig

DEFAULT_ALPHAS = [round(0.1 * i, 1) for i in range(11)]


def _help(text: str) -> dict[str, str]:
    return {"help": text}


def _adapter_field(name: str) -> Any:
    """A field with the default and help of :class:`RAdapterConfig`'s field ``name`` (one place defines them)."""
    f = next(f for f in dataclasses.fields(RAdapterConfig) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return field(default_factory=f.default_factory, metadata=f.metadata)
    return field(default=f.default, metadata=f.metadata)


@dataclass
class ModelConfig:
    name: str = field(
        default="ViT-B-16",
        metadata=_help(
            "open_clip name, 'local-dir:PATH', 'hf:NAME_OR_PATH' or a path to an open_clip model-config .json"
        ),
    )
    pretrained: str | None = field(
        default="default",
        metadata=_help(
            "'default': the model's own weights (a local-dir:/hf: folder's; for an open_clip name its 'openai' tag, "
            "else name one); an open_clip pretrained tag or checkpoint path; 'none': random initialisation"
        ),
    )


@dataclass
class CsvSource:
    """The FLYP CSV: one row per image, with a caption and a class."""

    img_key: str = field(default="filepath", metadata=_help("image-path column"))
    caption_key: str = field(default="title", metadata=_help("caption column (rows without one use templates)"))
    label_key: str = field(default="class", metadata=_help("class column (names or integers)"))
    sep: str = field(default="\t", metadata=_help("field separator"))


@dataclass
class WorldSource:
    """The built-in offline world (``radapter demo``)."""

    seed: int = field(default=0, metadata=_help("seed of the generated data"))
    train: int = field(default=2000, metadata=_help("training images"))
    test: int = field(default=1000, metadata=_help("images per evaluation set"))
    rho: float = field(default=0.8, metadata=_help("strength of the spurious colour cue in the training domain"))


@dataclass
class RetrievalSource:
    """Image–text pairs for the retrieval task (annotation formats: see ``data.kind``)."""

    image_root: str | None = field(default=None, metadata=_help("folder of the training images (JSON/TXT formats)"))
    split: str = field(default="train+restval", metadata=_help("Karpathy split(s) to train on (COCO: train+restval)"))
    captions_per_image: int | str = field(
        default=5, metadata=_help("captions kept per image (COCO has 5–7: the first 5, as VSE++), or 'all'")
    )


@dataclass
class CoOpSource:
    """``data.coop``: a dataset of the CoOp benchmark for the ``base2new`` and ``cross_dataset`` tasks."""

    dataset: str | None = field(
        default=None,
        metadata=_help(
            "the training dataset: imagenet | caltech101 | oxford_pets | stanford_cars | oxford_flowers | food101 | "
            "fgvc_aircraft | sun397 | dtd | eurosat | ucf101 (CoOp's names and folders work too)"
        ),
    )
    root: str = field(default="data", metadata=_help("$DATA: the folder holding the datasets' folders (or few_shot/)"))
    layout: str = field(
        default="coop",
        metadata=_help("coop (CoOp's split_zhou_*.json / text files) | authors (few_shot/<name>/{train,val,test}/)"),
    )
    shots: int | None = field(
        default=16, metadata=_help("K: training images per class (val gets min(K, 4)); null: every training image")
    )
    repeat: bool = field(
        default=False, metadata=_help("fill classes with fewer than K images by drawing with replacement (Dassl)")
    )
    targets: list[str] = field(
        default_factory=list,
        metadata=_help(
            "cross_dataset: datasets evaluated on all their classes with their own template (not the source)"
        ),
    )
    templates: str = field(
        default="coop",
        metadata=_help(
            "coop (each dataset's CoOp prompt; the world's own templates) | imagenet80 (the 80 OpenAI templates, "
            "as the R-Adapter authors used) | a file with one template per line"
        ),
    )
    cache_dir: str | None = field(
        default=None, metadata=_help("folder of the few-shot draw's JSON cache; default: the run folder")
    )
    check_files: bool = field(default=True, metadata=_help("check that every image a split file lists exists"))


@dataclass
class SegmentationSource:
    """``data.segmentation``: the segmentation task's training data (detectron2's layout or the world's scenes),
    its segmenter and its evaluation defaults (docs/segmentation.md). Eval sets are ``data.eval_sets`` entries."""

    root: str | None = field(
        default=None,
        metadata=_help("folder relative image/label dirs are read from (detectron2's DETECTRON2_DATASETS)"),
    )
    image_dir: str | None = field(default=None, metadata=_help("training images (data.kind detectron2)"))
    label_dir: str | None = field(default=None, metadata=_help("training label maps (same file stems as the images)"))
    classes: str = field(
        default="coco_stuff171",
        metadata=_help("training class list: coco_stuff171 | ade150 | ade847 | pc59 | pc459 | voc20 | voc20b | a file"),
    )
    ignore_value: int | None = field(default=None, metadata=_help("ignore value of the labels (default: the list's)"))
    crop_size: int = field(default=384, metadata=_help("training crop side (CAT-Seg: 384)"))
    scale_range: list[float] = field(
        default_factory=lambda: [1.0, 1.0], metadata=_help("random factor on the shorter side before cropping")
    )
    hflip: bool = field(default=True, metadata=_help("random horizontal flips in training"))
    colour_jitter: bool = field(default=True, metadata=_help("SSD-style photometric jitter (CAT-Seg COLOR_AUG_SSD)"))
    world_seen: list[str] | None = field(
        default=None, metadata=_help("data.kind world: the seen (training) classes; default every other class")
    )
    loss: str = field(default="bce", metadata=_help("per-pixel loss: bce (CAT-Seg) | ce"))
    templates: str = field(
        default="catseg", metadata=_help("catseg | world | openai | simple | a file of templates ('{}' = class)")
    )
    synonyms: str = field(default="mean", metadata=_help("comma-separated synonyms: mean | first"))
    input_size: int | None = field(
        default=384, metadata=_help("side the CLIP sees (CAT-Seg ViT-B/16: 384); null: the crop's own size")
    )
    head: dict = field(
        default_factory=dict,
        metadata=_help("aggregation-head sizes overriding CAT-Seg's ViT-B/16 ones (SegHeadConfig)"),
    )
    guidance_layers: list[int] | None = field(
        default=None, metadata=_help("two CLIP blocks guiding the decoder; default (L/3 - 1, 2L/3 - 1)")
    )
    dense_residual: str = field(default="auto", metadata=_help("residual of the dense last block: auto|cls|token|none"))
    clip_lr_scale: float = field(
        default=0.01,
        metadata=_help("learning rate of pretrained CLIP weights (methods qv, full) = optim.lr × this (CAT-Seg 0.01)"),
    )
    miou_mode: str = field(
        default="present", metadata=_help("mIoU over classes present in the labels (detectron2 ≥ 2022) | predicted")
    )
    sliding_window: bool = field(default=False, metadata=_help("sliding-window inference (CAT-Seg's)"))
    window: int | None = field(default=None, metadata=_help("sliding window side (default: input_size)"))
    overlap: float = field(default=1 / 3, metadata=_help("sliding window overlap fraction"))
    sliding_resize: int | None = field(default=640, metadata=_help("resize to S×S before sliding (CAT-Seg 640)"))
    global_view: bool = field(default=True, metadata=_help("average the windows with a whole-image pass"))


@dataclass
class DataConfig:
    kind: str = field(
        default="imagefolder",
        metadata=_help(
            "training data source: imagefolder | csv | world (classification); karpathy | coco | flickr_txt | "
            "csv | jsonl | auto | world (retrieval); coop | world (base2new, cross_dataset: see data.coop)"
        ),
    )
    train: str | None = field(
        default=None, metadata=_help("training data: an ImageFolder dir or a CSV file (not used by kind 'world')")
    )
    classnames: str | None = field(
        default=None,
        metadata=_help(
            "class names: 'imagenet' (wnid folders → OpenAI names) or a file of 'folder<TAB>name' lines; "
            "default: the folder names"
        ),
    )
    templates: str = field(
        default="openai",
        metadata=_help("openai | simple | world | path to a text file with one template per line ('{}' = class name)"),
    )
    shots: int | None = field(default=None, metadata=_help("k-shot: sample k training images per class"))
    holdout_fraction: float = field(
        default=0.0, metadata=_help("fraction of training data held out to choose α; 0 disables the choice")
    )
    train_scale: list[float] = field(
        default_factory=lambda: [0.9, 1.0], metadata=_help("RandomResizedCrop scale range")
    )
    hflip: bool = field(default=False, metadata=_help("random horizontal flips in training"))
    workers: int = field(default=2, metadata=_help("DataLoader worker processes"))
    skip_corrupt: bool = field(default=False, metadata=_help("skip (and count) unreadable training images"))
    check_images: bool = field(
        default=False,
        metadata=_help("decode every image of every set before training and stop with the list of unreadable ones"),
    )
    eval_sets: list[dict] = field(
        default_factory=list,
        metadata=_help("evaluation sets, each {name, path, kind, ood, ...}; the task validates their keys"),
    )
    csv: CsvSource = field(default_factory=CsvSource)
    world: WorldSource = field(default_factory=WorldSource)
    retrieval: RetrievalSource = field(default_factory=RetrievalSource)
    coop: CoOpSource = field(default_factory=CoOpSource)
    segmentation: SegmentationSource = field(default_factory=SegmentationSource)


@dataclass
class OptimConfig:
    lr: float = 5e-4
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay on >=2-D tensors only"))
    batch_size: int = field(default=512, metadata=_help("global batch size (all processes together)"))
    epochs: int = 10
    steps: int | None = field(default=None, metadata=_help("total optimizer steps (overrides epochs)"))
    warmup_steps: int = 500
    grad_clip: float | None = 1.0
    accum_steps: int = field(default=1, metadata=_help("gradient accumulation micro-steps per optimizer step"))
    precision: str = field(
        default="fp32",
        metadata=_help("fp32 | bf16 (autocast, CPU or CUDA) | fp16 (CUDA autocast with a gradient scaler)"),
    )
    grad_checkpointing: bool = field(
        default=False, metadata=_help("recompute block activations in the backward pass: less memory, more time")
    )
    frozen_dtype: str = field(
        default="fp32",
        metadata=_help(
            "fp32 | bf16: hold the frozen base weights in bf16 while training (adapters, EMA and optimizer "
            "state stay fp32; evaluation, merge and export use the fp32 weights); needs precision bf16 or fp16"
        ),
    )


@dataclass
class PairLossConfig:
    """The loss of a method that trains on (image, caption) pairs (R-Adapter, LoRA)."""

    loss: str = field(default="mpm_nce", metadata=_help("mpm_nce | clip | ce | sigmoid (SigLIP models)"))
    margin: float = field(default=0.05, metadata=_help("MPM-NCE margin δ on negatives"))
    label_smoothing: float = field(default=0.02, metadata=_help("MPM-NCE / CE label smoothing ε"))


@dataclass
class RAdapterMethodConfig(PairLossConfig):
    """``method.radapter``: where adapters go and how they train (the deploy α is ``eval.alpha``)."""

    rank: int | None = _adapter_field("rank")
    init_scale: float = _adapter_field("init_scale")
    drop_prob: float = _adapter_field("drop_prob")
    drop_granularity: str = _adapter_field("drop_granularity")
    ema_momentum: float = _adapter_field("ema_momentum")
    towers: str = _adapter_field("towers")
    blocks: list[int] | None = _adapter_field("blocks")
    positions: list[str] = _adapter_field("positions")
    use_ema: bool = field(default=True, metadata=_help("evaluate/merge the EMA adapter (false: the live weights)"))

    def adapter_config(self, alpha: float) -> RAdapterConfig:
        """The library's :class:`RAdapterConfig` of this section at deploy α ``alpha``."""
        keys = {f.name for f in dataclasses.fields(RAdapterConfig)} - {"alpha"}
        return RAdapterConfig(alpha=alpha, **{k: v for k, v in asdict(self).items() if k in keys})


@dataclass
class LoraMethodConfig(PairLossConfig):
    """``method.lora``: the LoRA baseline through peft, trained with the same loss as R-Adapter."""

    r: int = field(default=8, metadata=_help("LoRA rank"))
    lora_alpha: float = field(default=16.0, metadata=_help("peft's lora_alpha (scaling lora_alpha / r)"))
    dropout: float = field(default=0.0, metadata=_help("peft's lora_dropout"))


@dataclass
class FTMethodConfig:
    """``method.ft`` (also used by ``lpft`` and ``wiseft``): image tower + linear head, cross-entropy."""

    label_smoothing: float = 0.0


@dataclass
class LPFTMethodConfig:
    probe_fraction: float = field(default=0.5, metadata=_help("fraction of steps spent on the linear probe"))
    probe_lr: float = field(default=1e-3, metadata=_help("learning rate of the linear probe"))


@dataclass
class WiseFTMethodConfig:
    of: str = field(
        default="ft",
        metadata=_help(
            "the fine-tuning it interpolates: ft | lpft (classification) | flyp (both towers, any pair task)"
        ),
    )
    ft_model: str | None = field(
        default=None, metadata=_help("run dir of a finished run of that method (otherwise wiseft trains it itself)")
    )


@dataclass
class CoOpMethodConfig:
    """``method.coop``: CoOp's learnable prompt context (Zhou et al., IJCV 2022); everything else stays frozen."""

    n_ctx: int | None = field(
        default=None,
        metadata=_help("context vectors M; default 16 with random init, the init phrase's token count with init"),
    )
    init: str | None = field(
        default=None, metadata=_help("null: random N(0, 0.02²) context; or a phrase, e.g. 'a photo of a'")
    )
    label_smoothing: float = field(default=0.0, metadata=_help("cross-entropy label smoothing (CoOp: 0)"))


@dataclass
class ClipTuneMethodConfig:
    """``method.qv`` / ``method.full``: which towers' pretrained weights train (with a task's own loss)."""

    towers: str = field(default="both", metadata=_help("both | image | text"))


@dataclass
class MethodConfig:
    name: str = field(
        default="radapter", metadata=_help("zeroshot | ft | lpft | flyp | wiseft | lora | radapter | coop")
    )
    radapter: RAdapterMethodConfig = field(default_factory=RAdapterMethodConfig)
    lora: LoraMethodConfig = field(default_factory=LoraMethodConfig)
    ft: FTMethodConfig = field(default_factory=FTMethodConfig)
    lpft: LPFTMethodConfig = field(default_factory=LPFTMethodConfig)
    wiseft: WiseFTMethodConfig = field(default_factory=WiseFTMethodConfig)
    coop: CoOpMethodConfig = field(default_factory=CoOpMethodConfig)
    qv: ClipTuneMethodConfig = field(default_factory=ClipTuneMethodConfig)
    full: ClipTuneMethodConfig = field(default_factory=ClipTuneMethodConfig)


@dataclass
class EvalConfig:
    alpha: float | None = field(
        default=None,
        metadata=_help(
            "deploy α: the re-scaling (R-Adapter) or interpolation (WiSE-FT) the exported model uses; "
            "default: the task's (classification 0.5, retrieval 0.8, segmentation 0.4)"
        ),
    )
    alphas: list[float] = field(
        default_factory=lambda: list(DEFAULT_ALPHAS), metadata=_help("α grid evaluated after training (the sweep)")
    )
    batch_size: int = 256
    max_images: int | None = field(
        default=None, metadata=_help("cap per eval set: a seeded, class-balanced subset (quick looks)")
    )


@dataclass
class RunConfig:
    out: str = "runs/run"
    seed: int = field(default=0, metadata=_help("drives initialisation, data order, sampling and augmentation"))
    device: str = field(default="auto", metadata=_help("auto | cpu | cuda | cuda:N"))
    threads: int | None = field(
        default=None,
        metadata=_help("torch CPU threads; default: one per core, or only the free cores when the machine is busy"),
    )
    task: str = field(
        default="classification",
        metadata=_help("the task: classification | retrieval | base2new | cross_dataset | … (see `radapter tasks`)"),
    )
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    checkpoint_every: int = field(
        default=0,
        metadata=_help("checkpoint every N steps, kept permanently (0 = at each epoch end, keeping the last `keep`)"),
    )
    keep: int = field(default=2, metadata=_help("how many step checkpoints to keep"))
    log_every: int = 10
    tensorboard: bool = False
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Keys of earlier releases: using one is an error that names its new place.
RENAMED_KEYS: dict[str, str] = {
    "method.adapter.alpha": "eval.alpha",
    "method.adapter": "method.radapter",
    "method.use_ema": "method.radapter.use_ema",
    "method.loss": "method.radapter.loss (or method.lora.loss)",
    "method.margin": "method.radapter.margin (or method.lora.margin)",
    "method.label_smoothing": "method.radapter.label_smoothing (method.lora.…, method.ft.…)",
    "method.lora_r": "method.lora.r",
    "method.lora_alpha": "method.lora.lora_alpha",
    "method.lora_dropout": "method.lora.dropout",
    "method.probe_fraction": "method.lpft.probe_fraction",
    "method.probe_lr": "method.lpft.probe_lr",
    "method.ft_model": "method.wiseft.ft_model",
    "data.csv_img_key": "data.csv.img_key",
    "data.csv_caption_key": "data.csv.caption_key",
    "data.csv_label_key": "data.csv.label_key",
    "data.csv_sep": "data.csv.sep",
    "data.world_seed": "data.world.seed",
    "data.world_train": "data.world.train",
    "data.world_test": "data.world.test",
    "data.world_rho": "data.world.rho",
}
