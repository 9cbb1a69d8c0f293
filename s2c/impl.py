"""Chooses between compiled kernels (s2c._fast) and their pure-Python twins (s2c._ref).

Owns: the S2C_IMPL switch. Must not: fall back silently. With S2C_IMPL unset or
``fast`` a missing extension is an ExtensionMissing error naming the fix.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from .errors import ConfigError, ExtensionMissing

_CHOICES = ("fast", "py")


def choice() -> str:
    value = os.environ.get("S2C_IMPL", "fast").strip().lower() or "fast"
    if value not in _CHOICES:
        raise ConfigError(f"S2C_IMPL={value!r} is not one of: fast, py")
    return value


def load(name: str, which: str | None = None) -> ModuleType:
    """Return kernel module ``name`` from s2c._fast (compiled) or s2c._ref (twin)."""
    which = which or choice()
    if which == "py":
        return importlib.import_module(f"s2c._ref.{name}")
    try:
        return importlib.import_module(f"s2c._fast.{name}")
    except ImportError as exc:
        raise ExtensionMissing(
            f"compiled extension s2c._fast.{name} is missing ({exc}); "
            f"reinstall with 'pip install .' or set S2C_IMPL=py for the slow pure-Python twins"
        ) from None
