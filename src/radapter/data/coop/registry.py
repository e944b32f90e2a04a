"""The 11 datasets of the CoOp few-shot / base-to-novel / cross-dataset benchmark, as CoOp defines them.

Source: Zhou et al., *Learning to Prompt for Vision-Language Models* (IJCV 2022), code at
github.com/KaiyangZhou/CoOp: ``DATASETS.md`` (folder layout, split files), ``datasets/*.py`` (image folders,
class-name fixes) and ``trainers/zsclip.py`` (``CUSTOM_TEMPLATES``, the one hand-written prompt per dataset).
The facts are transcribed here as data; no code was copied.

Every dataset lives in ``$DATA/<folder>/``. Nine of them ship a fixed split ``split_zhou_<Name>.json`` whose paths
are relative to ``<folder>/<image_dir>``; FGVC-Aircraft uses the dataset's own text files and ImageNet its
``images/{train,val}`` folders (its val set is CoOp's test set, and also its val set).

Class-name fixes: CoOp rewrote some names when it *created* its split files (Caltech101, EuroSAT, UCF101,
OxfordPets, StanfordCars, SUN397), so the names inside ``split_zhou_*.json`` are already fixed and are read as
they are. The fixes recorded here (renames, dropped folders, CamelCase splitting) are applied only where names
come from folder names: the authors' alternative ``few_shot/<name>/{train,val,test}/<class>/`` layout.
Prompts replace ``_`` by a space in every name, as CoOp's trainers do.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "COOP_DATASETS",
    "CoOpDatasetSpec",
    "PublishedCounts",
    "coop_dataset_names",
    "fix_folder_classname",
    "get_coop_dataset",
    "split_camel_case",
]


@dataclass(frozen=True)
class PublishedCounts:
    """Split sizes of CoOp's fixed splits, as published (CoOp paper, dataset table). ``val=None``: val is test."""

    classes: int
    train: int
    val: int | None
    test: int


@dataclass(frozen=True)
class CoOpDatasetSpec:
    """One dataset of the CoOp benchmark.

    Attributes:
        name: Registry key (``"dtd"``).
        coop_name: CoOp's class / config name (``"DescribableTextures"``), the key of its templates.
        folder: Folder under ``$DATA`` (``"dtd"``).
        image_dir: Folder under ``folder`` that the split's paths are relative to (``""``: ``folder`` itself).
        split_file: ``split_zhou_*.json`` under ``folder``; ``None`` for ImageNet and FGVC-Aircraft.
        layout: How CoOp reads it: ``"split_json"``, ``"imagenet"`` or ``"fgvc_aircraft"``.
        template: CoOp's hand-written prompt (``str.format`` style, ``{}`` = class name).
        authors_folder: Folder under ``few_shot/`` in the R-Adapter authors' layout (``"ILSVRC2012"`` for ImageNet).
        renames: Folder name -> class name, applied to folder-derived names (Caltech101, EuroSAT).
        ignored_folders: Class folders CoOp drops (Caltech101's ``BACKGROUND_Google`` and ``Faces_easy``).
        camel_case: Split CamelCase folder names into ``_``-joined words (UCF101: ``ApplyEyeMakeup`` ->
            ``Apply_Eye_Makeup``), as CoOp did when it built its split.
        val_is_test: CoOp uses the test set as val (ImageNet); few-shot sampling leaves val alone.
        published: Split sizes CoOp published, shown next to the loaded counts (never asserted).
    """

    name: str
    coop_name: str
    folder: str
    image_dir: str
    split_file: str | None
    layout: str
    template: str
    authors_folder: str
    published: PublishedCounts
    renames: Mapping[str, str] = field(default_factory=dict)
    ignored_folders: tuple[str, ...] = ()
    camel_case: bool = False
    val_is_test: bool = False


_CALTECH_RENAMES = {"airplanes": "airplane", "Faces": "face", "Leopards": "leopard", "Motorbikes": "motorbike"}
_EUROSAT_RENAMES = {
    "AnnualCrop": "Annual Crop Land",
    "Forest": "Forest",
    "HerbaceousVegetation": "Herbaceous Vegetation Land",
    "Highway": "Highway or Road",
    "Industrial": "Industrial Buildings",
    "Pasture": "Pasture Land",
    "PermanentCrop": "Permanent Crop Land",
    "Residential": "Residential Buildings",
    "River": "River",
    "SeaLake": "Sea or Lake",
}


def _spec(**kwargs) -> CoOpDatasetSpec:
    kwargs["renames"] = MappingProxyType(dict(kwargs.get("renames", {})))
    kwargs.setdefault("authors_folder", kwargs["folder"])
    return CoOpDatasetSpec(**kwargs)


_SPECS = (
    _spec(
        name="imagenet",
        coop_name="ImageNet",
        folder="imagenet",
        image_dir="images",
        split_file=None,
        layout="imagenet",
        template="a photo of a {}.",
        authors_folder="ILSVRC2012",
        val_is_test=True,
        published=PublishedCounts(1000, 1281167, None, 50000),
    ),
    _spec(
        name="caltech101",
        coop_name="Caltech101",
        folder="caltech-101",
        image_dir="101_ObjectCategories",
        split_file="split_zhou_Caltech101.json",
        layout="split_json",
        template="a photo of a {}.",
        renames=_CALTECH_RENAMES,
        ignored_folders=("BACKGROUND_Google", "Faces_easy"),
        published=PublishedCounts(100, 4128, 1649, 2465),
    ),
    _spec(
        name="oxford_pets",
        coop_name="OxfordPets",
        folder="oxford_pets",
        image_dir="images",
        split_file="split_zhou_OxfordPets.json",
        layout="split_json",
        template="a photo of a {}, a type of pet.",
        published=PublishedCounts(37, 2944, 736, 3669),
    ),
    _spec(
        name="stanford_cars",
        coop_name="StanfordCars",
        folder="stanford_cars",
        image_dir="",
        split_file="split_zhou_StanfordCars.json",
        layout="split_json",
        template="a photo of a {}.",
        published=PublishedCounts(196, 6509, 1635, 8041),
    ),
    _spec(
        name="oxford_flowers",
        coop_name="OxfordFlowers",
        folder="oxford_flowers",
        image_dir="jpg",
        split_file="split_zhou_OxfordFlowers.json",
        layout="split_json",
        template="a photo of a {}, a type of flower.",
        published=PublishedCounts(102, 4093, 1633, 2463),
    ),
    _spec(
        name="food101",
        coop_name="Food101",
        folder="food-101",
        image_dir="images",
        split_file="split_zhou_Food101.json",
        layout="split_json",
        template="a photo of {}, a type of food.",
        published=PublishedCounts(101, 50500, 20200, 30300),
    ),
    _spec(
        name="fgvc_aircraft",
        coop_name="FGVCAircraft",
        folder="fgvc_aircraft",
        image_dir="images",
        split_file=None,
        layout="fgvc_aircraft",
        template="a photo of a {}, a type of aircraft.",
        published=PublishedCounts(100, 3334, 3333, 3333),
    ),
    _spec(
        name="sun397",
        coop_name="SUN397",
        folder="sun397",
        image_dir="SUN397",
        split_file="split_zhou_SUN397.json",
        layout="split_json",
        template="a photo of a {}.",
        published=PublishedCounts(397, 15880, 3970, 19850),
    ),
    _spec(
        name="dtd",
        coop_name="DescribableTextures",
        folder="dtd",
        image_dir="images",
        split_file="split_zhou_DescribableTextures.json",
        layout="split_json",
        template="{} texture.",
        published=PublishedCounts(47, 2820, 1128, 1692),
    ),
    _spec(
        name="eurosat",
        coop_name="EuroSAT",
        folder="eurosat",
        image_dir="2750",
        split_file="split_zhou_EuroSAT.json",
        layout="split_json",
        template="a centered satellite photo of {}.",
        renames=_EUROSAT_RENAMES,
        published=PublishedCounts(10, 13500, 5400, 8100),
    ),
    _spec(
        name="ucf101",
        coop_name="UCF101",
        folder="ucf101",
        image_dir="UCF-101-midframes",
        split_file="split_zhou_UCF101.json",
        layout="split_json",
        template="a photo of a person doing {}.",
        camel_case=True,
        published=PublishedCounts(101, 7639, 1898, 3783),
    ),
)

#: The registry, in the order of CoOp's ``DATASETS.md`` (and of the base-to-novel tables).
COOP_DATASETS: Mapping[str, CoOpDatasetSpec] = MappingProxyType({s.name: s for s in _SPECS})


def _alias_key(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", name.lower())


_ALIASES: dict[str, str] = {}
for _s in _SPECS:
    for _alias in (_s.name, _s.coop_name, _s.folder, _s.authors_folder):
        _ALIASES[_alias_key(_alias)] = _s.name
_ALIASES.update({"flowers102": "oxford_flowers", "pets": "oxford_pets", "cars": "stanford_cars"})


def coop_dataset_names() -> list[str]:
    """Registry keys of the 11 datasets, in CoOp's order (ImageNet first)."""
    return list(COOP_DATASETS)


def get_coop_dataset(name: str) -> CoOpDatasetSpec:
    """Looks a dataset up by its key, CoOp name or folder (case, ``-``, ``_`` and spaces ignored).

    Raises:
        KeyError: An unknown name; the message lists the known keys.
    """
    key = _ALIASES.get(_alias_key(str(name)))
    if key is None:
        raise KeyError(f"unknown CoOp dataset {name!r}; known: {', '.join(COOP_DATASETS)}")
    return COOP_DATASETS[key]


def split_camel_case(name: str) -> str:
    """``"ApplyEyeMakeup"`` -> ``"Apply_Eye_Makeup"`` (UCF101's folder names, split as CoOp's split file has them).

    Names that already contain ``_`` (the split file's form) are returned unchanged.
    """
    if "_" in name:
        return name
    words = re.findall(r"[A-Z][^A-Z]*", name)
    return "_".join(words) if words and "".join(words) == name else name


def fix_folder_classname(spec: CoOpDatasetSpec, folder: str) -> str:
    """The class name CoOp gives a class folder: renamed, CamelCase split (UCF101), else the folder name."""
    if folder in spec.renames:
        return spec.renames[folder]
    return split_camel_case(folder) if spec.camel_case else folder
