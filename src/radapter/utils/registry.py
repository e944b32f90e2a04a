"""A small name → class registry with a class decorator (``@register``) and errors that suggest a name."""

from __future__ import annotations

import difflib
from typing import Generic, TypeVar

from ..errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Classes by their ``key`` attribute, e.g. tasks (``task:``) or methods (``method.name``).

    Args:
        what: What the entries are, for error messages ("task", "method").
        config_key: The config key that selects an entry, for error messages ("task", "method.name").
    """

    def __init__(self, what: str, config_key: str) -> None:
        self.what, self.config_key = what, config_key
        self._entries: dict[str, T] = {}

    def register(self, cls: T) -> T:
        """Class decorator: makes ``cls`` selectable by its ``key``."""
        if not getattr(cls, "key", ""):
            raise ValueError(f"{cls.__name__}: a {self.what} needs a non-empty 'key'")
        self._entries[cls.key] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: str) -> T:
        if name not in self._entries:
            close = difflib.get_close_matches(name, list(self._entries), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{self.config_key}: unknown {self.what} {name!r}{hint}; available: {', '.join(self.names())}"
            )
        return self._entries[name]
