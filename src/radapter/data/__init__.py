"""Datasets for fine-tuning CLIP classifiers and evaluating them under distribution shift.

* :mod:`~radapter.data.images` — reading images; :class:`CorruptImageError`, corrupt-image scans.
* :mod:`~radapter.data.folders` — :class:`ImageFolderDataset` (one folder per class, ``classnames.txt``).
* :mod:`~radapter.data.csvdata` — :class:`CsvDataset`, the FLYP / R-Adapter TAB-separated CSV.
* :mod:`~radapter.data.fewshot` — seeded :func:`sample_k_shot` and :func:`split_holdout`.
* :mod:`~radapter.data.transforms` — CLIP train / eval preprocessing, ObjectNet border crop.
"""

from radapter.data.base import DatasetLayoutError, ImageSampleDataset, skip_corrupt_images
from radapter.data.csvdata import CsvDataset
from radapter.data.fewshot import sample_k_shot, split_holdout
from radapter.data.folders import ImageFolderDataset
from radapter.data.images import (
    IMAGE_EXTENSIONS,
    CorruptImageError,
    SkippedImages,
    check_image,
    load_image,
    scan_images,
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
    "IMAGE_EXTENSIONS",
    "OPENAI_DATASET_MEAN",
    "OPENAI_DATASET_STD",
    "BorderCrop",
    "CorruptImageError",
    "CsvDataset",
    "DatasetLayoutError",
    "ImageFolderDataset",
    "ImageSampleDataset",
    "SkippedImages",
    "border_crop",
    "check_image",
    "eval_transform",
    "load_image",
    "sample_k_shot",
    "scan_images",
    "skip_corrupt_images",
    "split_holdout",
    "train_transform",
]
