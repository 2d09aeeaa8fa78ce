"""napari-fewcell: segment a whole microscopy image from a tiny annotated prompt.

The API is the engine's public names (:mod:`napari_fewcell.engine`), imported on first use: ``import
napari_fewcell`` and the ``fewcell`` command's ``--help`` need no torch.
"""
from .engine import __all__ as ENGINE_NAMES
from .engine.core.exports import lazy_exports
from .engine.core.version import __version__

__getattr__, __dir__, __all__ = lazy_exports(__name__, {".engine": tuple(ENGINE_NAMES)})
__all__ = [*__all__, "__version__"]
