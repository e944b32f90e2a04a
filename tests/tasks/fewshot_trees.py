"""Fake CoOp trees with varied images and a tiny open_clip config whose text tower fits CoOp's 16 context tokens,
shared by the few-shot tests (a plain module: the project imports ``tests/conftest.py`` as ``conftest``).

Importing this module puts ``tests/data`` and ``tests/prompting`` on ``sys.path`` for their helpers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

_TESTS = Path(__file__).resolve().parents[1]
for _sub in ("data", "prompting", "tasks"):
    if str(_TESTS / _sub) not in sys.path:
        sys.path.insert(0, str(_TESTS / _sub))

from coop_fake_trees import write_split_json_tree  # noqa: E402
from coop_tiny_models import TINY_OPEN_CLIP_CFG  # noqa: E402
from tiny_images import write_image  # noqa: E402

from radapter.data.coop.registry import get_coop_dataset  # noqa: E402

#: dataset -> (class folders, class names in the split file or None for the folders). DTD: 5 classes, so 3 base
#: and 2 novel; EuroSAT's names are CoOp's renamed ones.
TREES = {
    "dtd": (["banded", "blotchy", "braided", "bubbly", "bumpy"], None),
    "eurosat": (["AnnualCrop", "Forest", "River"], ["Annual Crop Land", "Forest", "River"]),
    "oxford_pets": (["abyssinian", "beagle", "boxer", "pug"], None),
}
COUNTS = (6, 2, 3)  # train, val, test images per class


def write_coop_root(root: Path, seed: int = 0) -> Path:
    """Writes the three datasets of :data:`TREES` under ``root`` (CoOp's layout), every image a random colour."""
    rng = np.random.default_rng(seed)
    for name, (folders, names) in TREES.items():
        spec = get_coop_dataset(name)
        split = write_split_json_tree(root, spec, folders, COUNTS, names)
        image_root = root / spec.folder / spec.image_dir if spec.image_dir else root / spec.folder
        for items in split.values():
            for rel, _label, _name in items:
                colour = tuple(int(c) for c in rng.integers(0, 256, 3))
                write_image(image_root / rel, size=(12, 12), color=colour)
    return root


def split_file(root: Path, name: str) -> dict:
    spec = get_coop_dataset(name)
    return json.loads((root / spec.folder / spec.split_file).read_text())


def write_model_json(path: Path) -> str:
    """The tiny open_clip config with a 32-token context (room for 16 context tokens and a class name)."""
    path.write_text(json.dumps(TINY_OPEN_CLIP_CFG))
    return str(path)


def train_args(model_json: str, root: Path, out: Path, method: str = "radapter", *extra: str) -> list[str]:
    """``radapter train`` on the base-to-novel task of the fake DTD (4 shots) with the tiny_test preset."""
    return [
        "train",
        "--config",
        "tiny_test",
        "--task",
        "base2new",
        "--model",
        model_json,
        "--method",
        method,
        "--out",
        str(out),
        "--data.kind",
        "coop",
        "--data.coop.dataset",
        "dtd",
        "--data.coop.root",
        str(root),
        "--data.coop.shots",
        "4",
        *extra,
    ]
