"""The CoOp benchmark datasets: few-shot, base-to-novel and cross-dataset protocols (Zhou et al., IJCV 2022).

* :mod:`~radapter.data.coop.registry` — the 11 datasets: folders, split files, class-name fixes, CoOp templates.
* :mod:`~radapter.data.coop.readers` — ``split_zhou_*.json``, FGVC-Aircraft's text files, ImageNet's folders,
  and the R-Adapter authors' ``few_shot/<name>/{train,val,test}/`` layout.
* :mod:`~radapter.data.coop.sampling` — seeded K-shot draws with Dassl's semantics, cached as JSON.
* :mod:`~radapter.data.coop.splits` — base / novel halves, relabelled; the class lists of a run.
* :mod:`~radapter.data.coop.templates` — ``coop``, ``imagenet80`` or a template file.
* :mod:`~radapter.data.coop.datasets` — torch datasets over a split, and the seeded training view.

Typical use::

    data = load_coop_dataset("dtd", "/data")                         # all classes, CoOp's split
    data = make_few_shot(data, 16, seed=1, cache_path=run / few_shot_cache_name("dtd", 16, 1))
    base, novel = subsample_classes(data, "base"), subsample_classes(data, "novel")
    write_class_split(run, data.classnames)
"""

from radapter.data.coop.base import SPLITS, CoOpData, Datum, prompt_name
from radapter.data.coop.datasets import SeededTrainView, split_dataset
from radapter.data.coop.readers import (
    check_images_exist,
    load_coop_dataset,
    read_authors_layout,
    read_fgvc_aircraft,
    read_imagenet,
    read_split_json,
    write_imagenet_classnames,
)
from radapter.data.coop.registry import (
    COOP_DATASETS,
    CoOpDatasetSpec,
    PublishedCounts,
    coop_dataset_names,
    get_coop_dataset,
)
from radapter.data.coop.sampling import (
    DEFAULT_SEEDS,
    MAX_VAL_SHOTS,
    few_shot_cache_name,
    make_few_shot,
    sample_per_class,
)
from radapter.data.coop.splits import base_novel_labels, subsample_classes, write_class_split
from radapter.data.coop.templates import TEMPLATE_SETS, coop_template, read_template_file, resolve_templates

__all__ = [
    "COOP_DATASETS",
    "DEFAULT_SEEDS",
    "MAX_VAL_SHOTS",
    "SPLITS",
    "TEMPLATE_SETS",
    "CoOpData",
    "CoOpDatasetSpec",
    "Datum",
    "PublishedCounts",
    "SeededTrainView",
    "base_novel_labels",
    "check_images_exist",
    "coop_dataset_names",
    "coop_template",
    "few_shot_cache_name",
    "get_coop_dataset",
    "load_coop_dataset",
    "make_few_shot",
    "prompt_name",
    "read_authors_layout",
    "read_fgvc_aircraft",
    "read_imagenet",
    "read_split_json",
    "read_template_file",
    "resolve_templates",
    "sample_per_class",
    "split_dataset",
    "subsample_classes",
    "write_class_split",
    "write_imagenet_classnames",
]
