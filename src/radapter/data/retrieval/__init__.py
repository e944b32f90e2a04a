"""Image-text retrieval data: one result type (:class:`ImageTextSet`), readers for the standard annotation
files, and torch Datasets for evaluation (each image once) and training (one caption per image per visit).

* :mod:`~radapter.data.retrieval.sets` — :class:`ImageTextSet`, captions-per-image selection, file checks.
* :mod:`~radapter.data.retrieval.formats` — Karpathy split JSON, CLIP_benchmark COCO JSON and Flickr30k
  TXT, FLYP-style CSV/TSV, JSONL; :func:`load_image_text_set` picks the reader.
* :mod:`~radapter.data.retrieval.datasets` — :class:`RetrievalImages`, :class:`RetrievalTrainPairs`.
"""

from radapter.data.retrieval.datasets import RetrievalImages, RetrievalTrainPairs
from radapter.data.retrieval.formats import (
    KARPATHY_SPLITS,
    load_image_text_set,
    read_caption_csv,
    read_caption_jsonl,
    read_coco_captions,
    read_flickr_txt,
    read_karpathy_json,
)
from radapter.data.retrieval.sets import (
    CaptionsPerImage,
    ImageTextSet,
    check_image_files,
    parse_captions_per_image,
    select_captions,
)

__all__ = [
    "KARPATHY_SPLITS",
    "CaptionsPerImage",
    "ImageTextSet",
    "RetrievalImages",
    "RetrievalTrainPairs",
    "check_image_files",
    "load_image_text_set",
    "parse_captions_per_image",
    "read_caption_csv",
    "read_caption_jsonl",
    "read_coco_captions",
    "read_flickr_txt",
    "read_karpathy_json",
    "select_captions",
]
