"""Small shared helpers: atomic file writes and safe tensor I/O."""

from .io import atomic_save_safetensors, atomic_write_text, load_safetensors

__all__ = ["atomic_save_safetensors", "atomic_write_text", "load_safetensors"]
