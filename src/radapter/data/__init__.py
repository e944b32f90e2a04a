"""Datasets for fine-tuning CLIP classifiers and evaluating them under distribution shift.

* :mod:`~radapter.data.images` — reading images; :class:`CorruptImageError`, corrupt-image scans.
* :mod:`~radapter.data.folders` — :class:`ImageFolderDataset` (one folder per class, ``classnames.txt``).
* :mod:`~radapter.data.csvdata` — :class:`CsvDataset`, the FLYP / R-Adapter TAB-separated CSV.
* :mod:`~radapter.data.fewshot` — seeded :func:`sample_k_shot` and :func:`split_holdout`.
* :mod:`~radapter.data.transforms` — CLIP train / eval preprocessing, ObjectNet border crop.
* :mod:`~radapter.data.shifts` — ImageNet, -V2, -Sketch, -A, -R and ObjectNet as :class:`EvalSet`.
* :mod:`~radapter.data.eval_sets` — user-defined evaluation sets from a config (:class:`EvalSetConfig`).
* :mod:`~radapter.data.class_lists` — the shipped class lists (ImageNet wnids, A/R subsets, ObjectNet map).
"""

from radapter.data.base import DatasetLayoutError, ImageSampleDataset, skip_corrupt_images
from radapter.data.class_lists import (
    ObjectNetClass,
    imagenet_a_wnids,
    imagenet_classnames,
    imagenet_ilsvrc2012_ids,
    imagenet_lemmas,
    imagenet_r_wnids,
    imagenet_wnids,
    match_imagenet_classes,
    objectnet_classes,
)
from radapter.data.csvdata import CsvDataset
from radapter.data.errors import DataError, DataTypeError
from radapter.data.eval_sets import EVAL_SET_KINDS, EvalSetConfig, build_eval_set, match_classnames
from radapter.data.fewshot import per_class_subset, sample_k_shot, split_holdout
from radapter.data.folders import ImageFolderDataset
from radapter.data.imagenet_val import FlatImageNetVal
from radapter.data.images import (
    IMAGE_EXTENSIONS,
    CorruptImageError,
    SkippedImages,
    check_image,
    image_paths,
    load_image,
    scan_images,
    to_rgb,
)
from radapter.data.shifts import (
    IMAGENET_EVAL_SETS,
    IMAGENET_KINDS,
    IMAGENET_SUITE_CANDIDATES,
    IMAGENET_SUITE_FOLDERS,
    EvalSet,
    build_imagenet_eval_set,
    build_imagenet_suite,
    find_imagenet_set,
)
from radapter.data.transforms import (
    OPENAI_DATASET_MEAN,
    OPENAI_DATASET_STD,
    BorderCrop,
    border_crop,
    eval_transform,
    train_transform,
)

__all__ = [
    "EVAL_SET_KINDS",
    "IMAGENET_EVAL_SETS",
    "IMAGENET_KINDS",
    "IMAGENET_SUITE_CANDIDATES",
    "IMAGENET_SUITE_FOLDERS",
    "IMAGE_EXTENSIONS",
    "OPENAI_DATASET_MEAN",
    "OPENAI_DATASET_STD",
    "BorderCrop",
    "CorruptImageError",
    "CsvDataset",
    "DataError",
    "DataTypeError",
    "DatasetLayoutError",
    "EvalSet",
    "EvalSetConfig",
    "FlatImageNetVal",
    "ImageFolderDataset",
    "ImageSampleDataset",
    "ObjectNetClass",
    "SkippedImages",
    "border_crop",
    "build_eval_set",
    "build_imagenet_eval_set",
    "build_imagenet_suite",
    "check_image",
    "eval_transform",
    "find_imagenet_set",
    "image_paths",
    "imagenet_a_wnids",
    "imagenet_classnames",
    "imagenet_ilsvrc2012_ids",
    "imagenet_lemmas",
    "imagenet_r_wnids",
    "imagenet_wnids",
    "load_image",
    "match_classnames",
    "match_imagenet_classes",
    "objectnet_classes",
    "per_class_subset",
    "sample_k_shot",
    "scan_images",
    "skip_corrupt_images",
    "split_holdout",
    "to_rgb",
    "train_transform",
]
