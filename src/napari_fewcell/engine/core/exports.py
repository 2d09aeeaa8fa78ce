"""A package's public names imported on first use (PEP 562): ``import napari_fewcell`` and the ``fewcell`` command's
parser import only the light modules they read (parameters, errors, the version), not torch. A package lists each
module and the names it gives, once:

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {".params": ("PromptParams",), ...})

A public name must not also be a sub-module's name: importing the sub-module would set the package's attribute to
the module (tests/test_architecture.py checks it).
"""
from __future__ import annotations

import sys
from importlib import import_module
from typing import Callable


def lazy_exports(package: str, public: dict[str, tuple[str, ...]]) -> tuple[Callable, Callable, list[str]]:
    """``(__getattr__, __dir__, __all__)`` of ``package``, whose ``public`` maps a module (absolute, or relative to
    the package) to the names it gives."""
    module_of = {name: module for module, names in public.items() for name in names}

    def getattr_(name: str):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module_of[name], package), name)
        setattr(sys.modules[package], name, value)  # imported once
        return value

    def dir_() -> list[str]:
        return sorted({*vars(sys.modules[package]), *module_of})

    return getattr_, dir_, sorted(module_of)
