"""What the procedural world contains: classes, domains, colours, caption vocabulary.

The world exists so that the whole robust-fine-tuning story (issue 5) plays out on a CPU in
minutes: a zero-shot model that is decent in every domain, a downstream training set of one domain
with a class-correlated colour cue, and shifted test sets where the cue weakens or disappears.

A feasibility study found that the *class* must be the easiest thing to see (large, clearly
different silhouettes, weak textures), otherwise a small CLIP learns domain and colour and leaves
class at chance. The defaults below follow it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Ten silhouettes chosen to differ at 32x32 px even as outlines and under +-15 deg rotation. Sorted,
# so that torchvision's ImageFolder (which sorts class folders) assigns the same label indices.
CLASSES: tuple[str, ...] = (
    "arrow",
    "circle",
    "cross",
    "heart",
    "hourglass",
    "house",
    "moon",
    "square",
    "star",
    "triangle",
)

# Rendering styles. "photo" is the in-distribution (ID) domain of the downstream benchmark.
DOMAINS: tuple[str, ...] = ("photo", "cartoon", "sketch", "inverted", "noisy", "lowcontrast")

# Named object colours (sRGB in [0, 1]); colour k is the spurious cue of class k.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.12),
    "orange": (1.00, 0.55, 0.05),
    "yellow": (0.95, 0.90, 0.15),
    "green": (0.15, 0.70, 0.20),
    "cyan": (0.15, 0.80, 0.90),
    "blue": (0.12, 0.25, 0.90),
    "purple": (0.55, 0.15, 0.75),
    "pink": (1.00, 0.50, 0.75),
    "brown": (0.55, 0.30, 0.10),
    "white": (0.95, 0.95, 0.95),
}

# Words a caption may use to name a domain. None of them occurs in the generic templates below, so
# "does this caption mention the domain" is a plain word test.
DOMAIN_WORDS: dict[str, tuple[str, ...]] = {
    "photo": ("photograph", "realistic", "camera"),
    "cartoon": ("cartoon", "clipart", "comic"),
    "sketch": ("sketch", "outline", "pencil"),
    "inverted": ("inverted", "negative", "reversed"),
    "noisy": ("noisy", "grainy", "static"),
    "lowcontrast": ("faded", "washed", "dim"),
}

# Zero-shot prompt templates (the first is CLIP's classic one). All also occur in the captions.
ZERO_SHOT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a {} shape.",
    "a drawing of a {}.",
)


@dataclass(frozen=True)
class WorldSpec:
    """Parameters of the procedural world; the defaults are the shipped world.

    Geometry is in fractions of the frame: an object's extent is `object_size` of the image side,
    its centre moves by up to `max_shift` (less for big objects so they stay in frame), and it turns
    by up to `max_rotation_deg`.
    """

    classes: tuple[str, ...] = field(default=CLASSES, metadata={"help": "class names, one silhouette each"})
    domains: tuple[str, ...] = field(default=DOMAINS, metadata={"help": "rendering styles"})
    colours: tuple[str, ...] = field(default=tuple(COLOURS), metadata={"help": "named object colours"})
    image_size: int = field(default=32, metadata={"help": "square image side in pixels"})
    supersample: int = field(default=4, metadata={"help": "anti-aliasing factor of the silhouette raster"})
    object_size: tuple[float, float] = field(default=(0.55, 0.85), metadata={"help": "object extent / frame"})
    max_shift: float = field(default=0.15, metadata={"help": "max centre shift / frame"})
    max_rotation_deg: float = field(default=15.0, metadata={"help": "max rotation in degrees"})
    # domain difficulty (tuned so that zero-shot accuracy is similar across domains)
    texture_amplitude: float = field(default=0.06, metadata={"help": "photo background texture std"})
    noise_sigma: float = field(default=0.08, metadata={"help": "pixel noise std of the noisy domain"})
    low_contrast: float = field(default=0.40, metadata={"help": "contrast factor of the lowcontrast domain"})
    # caption noise
    p_class_word: float = field(default=0.90, metadata={"help": "P(caption names a class)"})
    p_wrong_label: float = field(default=0.05, metadata={"help": "P(named class is wrong | names one)"})
    p_colour_word: float = field(default=0.25, metadata={"help": "P(caption names the colour)"})
    p_domain_word: float = field(default=0.25, metadata={"help": "P(caption names the domain)"})
    p_filler: float = field(default=0.30, metadata={"help": "P(caption has alt-text filler words)"})

    def __post_init__(self) -> None:
        unknown = [c for c in self.colours if c not in COLOURS]
        if unknown:
            raise ValueError(f"unknown colours {unknown}; known: {list(COLOURS)}")
        unknown = [d for d in self.domains if d not in DOMAIN_WORDS]
        if unknown:
            raise ValueError(f"unknown domains {unknown}; known: {list(DOMAIN_WORDS)}")
        if len(self.colours) < len(self.classes):
            raise ValueError("need at least one colour per class for the colour cue")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def domain_index(self, name: str) -> int:
        try:
            return self.domains.index(name)
        except ValueError:
            raise KeyError(f"unknown domain {name!r}; known: {list(self.domains)}") from None

    def cue_colour(self, label: int) -> int:
        """Index of the colour that class `label` takes when the spurious cue is on."""
        return label % len(self.colours)
