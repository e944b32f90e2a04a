"""Class silhouettes as implicit masks on canonical coordinates.

Each function takes canonical coordinates `u, v` (any shape, float tensors; `v` points up, the
shape fills roughly [-0.95, 0.95]^2) and returns a boolean tensor of the same shape: inside or not.
Rendering maps pixel centres into this frame with the inverse of each image's scale / rotation /
shift, so a whole batch is rasterised with a handful of tensor operations.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

Mask = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def circle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return u * u + v * v <= 0.92**2


def square(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.maximum(u.abs(), v.abs()) <= 0.78


def triangle(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # apex (0, 0.95), base at v = -0.8 from u = -0.95 to 0.95
    return (v >= -0.8) & (u.abs() <= 0.95 * (0.95 - v) / 1.75)


def star(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # five points: radius follows a triangle wave in the angle, peaking at the tips (one points up)
    r = torch.sqrt(u * u + v * v)
    t = torch.remainder((torch.atan2(v, u) - math.pi / 2) * 5 / (2 * math.pi), 1.0)
    tri = (1 - 2 * t).abs()  # 1 at a tip, 0 half-way between tips
    return r <= 0.40 + 0.55 * tri


def cross(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    au, av = u.abs(), v.abs()
    return ((au <= 0.28) & (av <= 0.92)) | ((av <= 0.28) & (au <= 0.92))


def heart(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 spans x in [-1.14, 1.14], y in [-1, 1.25]
    x = u * 1.2
    y = v * 1.2 + 0.12
    return (x * x + y * y - 1) ** 3 - x * x * y**3 <= 0


def moon(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # crescent opening to the right: a disc minus an offset disc
    return (u * u + v * v <= 0.92**2) & ((u - 0.45) ** 2 + (v - 0.15) ** 2 > 0.70**2)


def arrow(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # pointing right: a shaft and a triangular head
    shaft = (u >= -0.92) & (u <= 0.05) & (v.abs() <= 0.22)
    head = (u >= 0.0) & (u <= 0.92) & (v.abs() <= 0.8 * (0.92 - u) / 0.92)
    return shaft | head


def house(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    body = (u.abs() <= 0.65) & (v >= -0.9) & (v <= 0.1)
    roof = (v >= 0.05) & (v <= 0.92) & (u.abs() <= 0.92 * (0.92 - v) / 0.87)
    return body | roof


def hourglass(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    # two triangles meeting at a narrow waist, with flat caps
    av = v.abs()
    glass = (av <= 0.78) & (u.abs() <= 0.08 + 0.75 * av / 0.78)
    caps = (av >= 0.74) & (av <= 0.92) & (u.abs() <= 0.85)
    return glass | caps


SHAPES: dict[str, Mask] = {
    "circle": circle,
    "square": square,
    "triangle": triangle,
    "star": star,
    "cross": cross,
    "heart": heart,
    "moon": moon,
    "arrow": arrow,
    "house": house,
    "hourglass": hourglass,
}
