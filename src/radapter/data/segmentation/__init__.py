"""Semantic-segmentation data: benchmark class lists, label reading, detectron2's folder layout, joint transforms.

* :mod:`~radapter.data.segmentation.classes` — :class:`SegClassList`, the shipped lists (COCO-Stuff-171, ADE-150,
  ADE-847, PC-59, PC-459, VOC-20, VOC-20b) and user vocabularies;
* :mod:`~radapter.data.segmentation.labels` — :func:`read_label` (8/16/32-bit, never truncated);
* :mod:`~radapter.data.segmentation.dataset` — :class:`SemanticSegmentationDataset` (image dir + label dir);
* :mod:`~radapter.data.segmentation.transforms` — training crops and full-resolution evaluation.
"""

from .classes import SEGMENTATION_CLASS_LISTS, SegClassList, load_class_list, segmentation_class_list, split_synonyms
from .dataset import IMAGE_EXTS, LABEL_EXTS, SemanticSegmentationDataset, collate_eval, pair_files
from .labels import LabelFileError, check_label_values, read_label
from .transforms import SegEvalTransform, SegTrainTransform, nearest_resize, to_tensor_normalised

__all__ = [
    "IMAGE_EXTS",
    "LABEL_EXTS",
    "SEGMENTATION_CLASS_LISTS",
    "LabelFileError",
    "SegClassList",
    "SegEvalTransform",
    "SegTrainTransform",
    "SemanticSegmentationDataset",
    "check_label_values",
    "collate_eval",
    "load_class_list",
    "nearest_resize",
    "pair_files",
    "read_label",
    "segmentation_class_list",
    "split_synonyms",
    "to_tensor_normalised",
]
