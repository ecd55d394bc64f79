"""Crash-safe file helpers: atomic writes and the workspace lock."""

from .atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, read_json

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "read_json"]
