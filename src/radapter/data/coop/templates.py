"""Prompt templates for the CoOp datasets.

* ``coop`` (default): the one hand-written prompt per dataset of CoOp's zero-shot baseline
  (``CUSTOM_TEMPLATES`` in ``trainers/zsclip.py``), e.g. ``"{} texture."`` for DTD;
* ``imagenet80``: the 80 OpenAI ImageNet templates (:data:`radapter.zeroshot.OPENAI_IMAGENET_TEMPLATES`), which
  the R-Adapter authors used for every dataset (``--template=openai_imagenet_template``);
* a path: a text file with one template per line, ``{}`` (or ``{c}``) marking the class name.

A template is a string or a callable, as :func:`radapter.zeroshot.fill_template` accepts; class names are the
prompt-ready names of :class:`~radapter.data.coop.base.CoOpData` (``_`` already replaced by spaces).
"""

from __future__ import annotations

import os

from radapter.data.coop.registry import get_coop_dataset
from radapter.zeroshot import OPENAI_IMAGENET_TEMPLATES, Template

__all__ = ["TEMPLATE_SETS", "coop_template", "read_template_file", "resolve_templates"]

#: Named template sets; anything else is read as a file path.
TEMPLATE_SETS = ("coop", "imagenet80")


def coop_template(dataset: str) -> str:
    """CoOp's prompt for a dataset (``"a photo of a {}, a type of pet."`` for OxfordPets)."""
    return get_coop_dataset(dataset).template


def read_template_file(path: str | os.PathLike) -> list[str]:
    """Reads one template per line (blank lines and ``#`` comments skipped).

    Raises:
        ValueError: The file has no templates, or a template without ``{}`` / ``{c}`` (named with its line).
    """
    path = os.fspath(path)
    templates = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            text = line.rstrip("\r\n")
            if not text.strip() or text.lstrip().startswith("#"):
                continue
            if "{}" not in text and "{c}" not in text:
                raise ValueError(f"{path}: line {number} {text!r} has no '{{}}' (or '{{c}}') for the class name")
            templates.append(text)
    if not templates:
        raise ValueError(f"{path}: no templates (one per line, '{{}}' for the class name)")
    return templates


def resolve_templates(spec: str, dataset: str) -> list[Template]:
    """The templates a spec names for a dataset.

    Args:
        spec: ``"coop"``, ``"imagenet80"`` or a file path.
        dataset: The dataset (registry key, CoOp name or folder); used by ``"coop"``.

    Raises:
        ValueError: ``spec`` is neither a known set nor an existing file.
        KeyError: Unknown dataset (for ``"coop"``).
    """
    if spec == "coop":
        return [coop_template(dataset)]
    if spec == "imagenet80":
        return list(OPENAI_IMAGENET_TEMPLATES)
    if not os.path.isfile(spec):
        raise ValueError(f"templates: {spec!r} is not one of {', '.join(TEMPLATE_SETS)} nor an existing file")
    return list(read_template_file(spec))
