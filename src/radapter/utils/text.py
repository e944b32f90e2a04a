"""Short human-readable forms of numbers (shared by model cards and report tables)."""

from __future__ import annotations

MISSING = "–"


def format_params(n: float | None) -> str:
    """Parameter count, short: ``20447280`` → ``"20.4 M"``, ``512`` → ``"512"``, ``0`` → ``"0"``."""
    if n is None:
        return MISSING
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f}"
