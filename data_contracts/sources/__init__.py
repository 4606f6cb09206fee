"""Source adapters: each maps one public trip format onto the contract.

The registry names every adapter and imports its module only when asked for, so listing the names
(`ADAPTER_NAMES`, an unknown-source error) costs no adapter imports.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from data_contracts.names import ADAPTER_NAMES, ADAPTERS
from data_contracts.sources.base import SourceAdapter

__all__ = ["ADAPTER_NAMES", "SourceAdapter", "get_adapter"]


def _adapter_class(name: str) -> type:
    module_name, class_name = ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def get_adapter(name: str, mapping: Path | None = None) -> SourceAdapter:
    """The adapter registered as `name`; `generic` needs its YAML `mapping`, the others take none."""
    if name not in ADAPTERS:
        raise ValueError(f"unknown source {name!r}; known sources: {', '.join(ADAPTER_NAMES)}")
    cls = _adapter_class(name)
    if name == "generic":
        if mapping is None:
            raise ValueError("the generic source needs a YAML column mapping (see data_contracts/mappings/)")
        return cls.from_yaml(Path(mapping))
    if mapping is not None:
        raise ValueError(f"source {name!r} has a built-in mapping; a mapping file is only for 'generic'")
    return cls()
