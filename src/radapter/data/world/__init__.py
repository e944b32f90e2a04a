"""A procedural multi-domain image-caption world for CPU-sized robust fine-tuning experiments.

    from radapter.data.world import downstream_benchmark, WorldDataset, load_world_clip
    splits = downstream_benchmark(seed=0)            # train / id / id_shift / ood_<domain>
    model, preprocess, tokenizer = load_world_clip() # the shipped tiny CLIP (plain open_clip)

Modules: `spec` (classes, domains, colours, templates), `shapes` (silhouettes), `render` (styles),
`captions` (noisy alt-text), `generate` (sampling and the standard sets), `datasets` (torch Datasets,
ImageFolder writer), `clip` (the world CLIP's config, saving, zero-shot evaluation).
"""

from .clip import (
    WORLD_CLIP_DIR,
    build_world_clip,
    load_world_clip,
    save_open_clip_dir,
    world_clip_model_cfg,
    zero_shot_accuracy,
    zero_shot_head,
)
from .datasets import (
    WORLD_MEAN,
    WORLD_STD,
    WorldCaptionDataset,
    WorldDataset,
    images_to_tensor,
    write_image_folder,
    write_splits,
)
from .generate import (
    WorldSamples,
    downstream_benchmark,
    fixed_eval_sample,
    generate,
    heldout_set,
    measured_cue_strength,
    pretraining_set,
    validation_set,
)
from .instances import InstanceCaptionSpec, WorldInstances, generate_instances, retrieval_benchmark
from .spec import CLASSES, COLOURS, DOMAINS, ZERO_SHOT_TEMPLATES, WorldSpec

__all__ = [
    "CLASSES",
    "COLOURS",
    "DOMAINS",
    "WORLD_CLIP_DIR",
    "WORLD_MEAN",
    "WORLD_STD",
    "ZERO_SHOT_TEMPLATES",
    "InstanceCaptionSpec",
    "WorldCaptionDataset",
    "WorldDataset",
    "WorldInstances",
    "WorldSamples",
    "WorldSpec",
    "build_world_clip",
    "downstream_benchmark",
    "fixed_eval_sample",
    "generate",
    "generate_instances",
    "heldout_set",
    "images_to_tensor",
    "load_world_clip",
    "measured_cue_strength",
    "pretraining_set",
    "retrieval_benchmark",
    "save_open_clip_dir",
    "validation_set",
    "world_clip_model_cfg",
    "write_image_folder",
    "write_splits",
    "zero_shot_accuracy",
    "zero_shot_head",
]
