"""Seeded k-shot subsets and hold-out splits.

The authors' release draws its few-shot subsets without a seed (``r-adapter.md`` §8), so its
16-shot numbers cannot be reproduced. Here every draw comes from a NumPy generator seeded with
``(seed, class label)``:

* the same seed gives the same indices on every machine and Python process (nothing depends on
  ``PYTHONHASHSEED``, set order or dict order);
* a class's draw does not depend on the other classes, so adding a class to a dataset leaves
  the shots of the existing classes unchanged.

Every function returns a sorted index list; wrap it with ``torch.utils.data.Subset(dataset, idx)``.
:func:`per_class_subset` caps an evaluation set at N images without taking the first N files, which
in a sorted ImageFolder are the first few classes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np

from radapter.data.errors import DataError

__all__ = ["per_class_subset", "sample_k_shot", "split_holdout"]

# Salts keep the k-shot draw and the hold-out draw independent even with the same seed: choosing
# alpha on a hold-out of a 16-shot set must not reuse the shot sampler's random stream.
_KSHOT_SALT = 0
_HOLDOUT_SALT = 1
_SUBSET_SALT = 2
# Stream used by the unstratified split, far above any real label so it never shares a class's stream.
_ALL_CLASSES = 2**63


def _indices_by_class(targets: Sequence[int]) -> dict[int, list[int]]:
    by_class: dict[int, list[int]] = {}
    for index, label in enumerate(targets):
        label = int(label)
        if label < 0:
            raise DataError(f"targets must be non-negative class labels, found {label} at index {index}")
        by_class.setdefault(label, []).append(index)
    return dict(sorted(by_class.items()))


def _rng(seed: int, salt: int, label: int) -> np.random.Generator:
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng([int(seed), salt, label])


def _class_name(label: int, classnames: Sequence[str] | None) -> str:
    if classnames is not None and 0 <= label < len(classnames):
        return f"{label} ({classnames[label]!r})"
    return str(label)


def sample_k_shot(
    targets: Sequence[int],
    k: int,
    seed: int,
    *,
    strict: bool = True,
    classnames: Sequence[str] | None = None,
) -> list[int]:
    """Draws ``k`` examples of every class, reproducibly.

    Args:
        targets: Label of each example (e.g. ``dataset.targets``).
        k: Examples per class (``shots``).
        seed: Seed of the draw; the same seed gives the same indices.
        strict: A class with fewer than ``k`` examples is an error; with ``strict=False`` all of its
            examples are taken and a warning names the classes.
        classnames: Names of the labels, used in messages only.

    Returns:
        Sorted indices into ``targets``: ``k`` per class (fewer only for short classes when not strict).

    Raises:
        ValueError: ``k < 1``, a bad seed or label, or (strict) a class with fewer than ``k`` examples.
    """
    if int(k) != k or k < 1:
        raise DataError(f"k (shots per class) must be a positive integer, got {k!r}")
    k = int(k)
    by_class = _indices_by_class(targets)
    short = {label: len(idx) for label, idx in by_class.items() if len(idx) < k}
    if short:
        described = ", ".join(f"class {_class_name(c, classnames)} has {n}" for c, n in list(short.items())[:5])
        more = f" ... and {len(short) - 5} more classes" if len(short) > 5 else ""
        message = f"{k}-shot sampling: {len(short)} class(es) have fewer than {k} examples: {described}{more}"
        if strict:
            raise DataError(message + " (pass strict=False to take all examples of such classes)")
        warnings.warn(message + "; taking all of their examples", stacklevel=2)

    chosen: list[int] = []
    for label, indices in by_class.items():
        if len(indices) <= k:
            chosen.extend(indices)
            continue
        picks = _rng(seed, _KSHOT_SALT, label).choice(len(indices), size=k, replace=False)
        chosen.extend(indices[i] for i in picks)
    return sorted(chosen)


def split_holdout(
    targets: Sequence[int],
    fraction: float,
    seed: int,
    stratified: bool = True,
) -> tuple[list[int], list[int]]:
    """Splits examples into a training part and a held-out part, e.g. to choose α on training data.

    Stratified splits hold out ``round(fraction * n_c)`` examples of each class with ``n_c`` examples,
    but at least one (when the class has two or more) and never all of them: every class keeps at
    least one training example, and every class with two or more examples is represented in the
    hold-out, which matters for 16-shot data where ``fraction * 16`` rounds to one or two.
    Unstratified splits hold out ``round(fraction * n)`` examples drawn from all of them (at least
    one, and at least one is left for training).

    Args:
        targets: Label of each example.
        fraction: Share of examples to hold out, strictly between 0 and 1.
        seed: Seed of the draw.
        stratified: Split each class separately (default), or draw from all examples at once.

    Returns:
        ``(train_indices, holdout_indices)``: sorted, disjoint, together covering every index.

    Raises:
        ValueError: ``fraction`` outside (0, 1), a bad seed or label, or fewer than two examples.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise DataError(f"holdout fraction must be strictly between 0 and 1, got {fraction!r}")
    n = len(targets)
    if n < 2:
        raise DataError(f"need at least 2 examples to hold some out, got {n}")
    held: list[int] = []
    if stratified:
        for label, indices in _indices_by_class(targets).items():
            if len(indices) < 2:
                continue  # a lone example stays in training; the class would otherwise go unlearnt
            count = min(max(1, _round_half_up(fraction * len(indices))), len(indices) - 1)
            picks = _rng(seed, _HOLDOUT_SALT, label).choice(len(indices), size=count, replace=False)
            held.extend(indices[i] for i in picks)
    else:
        _indices_by_class(targets)  # validates the labels
        count = min(max(1, _round_half_up(fraction * n)), n - 1)
        held = [int(i) for i in _rng(seed, _HOLDOUT_SALT, _ALL_CLASSES).choice(n, size=count, replace=False)]
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], sorted(held)


def per_class_subset(targets: Sequence[int], max_items: int, seed: int) -> list[int]:
    """A seeded, class-balanced subset of at most ``max_items`` examples (e.g. a quick evaluation).

    The first N files of a sorted ImageFolder are its first classes; accuracy on them says little about
    the set. Here every class gets an equal share: ``q = max_items // C`` examples each for ``C`` classes,
    a class with fewer than its share gives all it has and passes the rest on to the others, and the
    ``max_items - sum`` left over go one each to classes drawn with the seed. Within a class the examples
    are a seeded permutation's prefix, so a larger ``max_items`` keeps every example a smaller one took.

    Args:
        targets: Label of each example (e.g. ``dataset.targets``).
        max_items: Most examples to keep.
        seed: Seed of the draw.

    Returns:
        Sorted indices into ``targets``; all of them when ``max_items >= len(targets)``.

    Raises:
        ValueError: ``max_items < 1``, a bad seed or a negative label.
    """
    if isinstance(max_items, bool) or int(max_items) != max_items or max_items < 1:
        raise DataError(f"max_items must be a positive integer, got {max_items!r}")
    _rng(seed, _SUBSET_SALT, 0)  # validates the seed
    by_class = _indices_by_class(targets)
    if int(max_items) >= len(targets):
        return list(range(len(targets)))
    # Water-filling: classes smaller than the current share take everything and leave the budget to the rest.
    quota: dict[int, int] = {}
    budget, open_classes = int(max_items), list(by_class)
    while open_classes:
        share = budget // len(open_classes)
        small = [c for c in open_classes if len(by_class[c]) <= share]
        if not small:
            break
        for c in small:
            quota[c] = len(by_class[c])
            budget -= quota[c]
        open_classes = [c for c in open_classes if c not in quota]
    if open_classes:
        share = budget // len(open_classes)
        extra = budget - share * len(open_classes)
        lucky = set(_rng(seed, _SUBSET_SALT, _ALL_CLASSES).choice(len(open_classes), size=extra, replace=False))
        for position, c in enumerate(open_classes):
            quota[c] = share + (1 if position in lucky else 0)
    chosen: list[int] = []
    for label, indices in by_class.items():
        order = _rng(seed, _SUBSET_SALT, label).permutation(len(indices))
        chosen.extend(indices[i] for i in order[: quota[label]])
    return sorted(chosen)


def _round_half_up(x: float) -> int:
    # Python's round() rounds halves to even (round(2.5) == 2); a split size should not flip
    # with the parity of the class size.
    return int(math.floor(x + 0.5))
