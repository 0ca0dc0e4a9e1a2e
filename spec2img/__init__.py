"""spec2img: audio files -> spectrogram PNGs for image classifiers.

The public API (everything else is internal by convention)::

    import spec2img
    spec2img.synth("clips")                                   # demo clips, as `spec2img synth`
    res = spec2img.convert("clips", "images", labels=None, preset="efficientat", jobs=1)
    res.n_ok, res.n_failed, res.manifest                      # a spec2img.ConvertResult

:func:`spec2img.api.convert` and :func:`spec2img.api.synth` are documented there. ``spec2img.convert``
and ``spec2img.synth`` are also the names of the modules that implement them
(``from spec2img import convert`` keeps giving the module), so those two modules are made callable:
calling one calls the API function. ``import spec2img`` loads nothing heavy.
"""

from __future__ import annotations

import importlib
import sys
import types

__all__ = ["ConvertResult", "SpectrogramConfig", "Spec2ImgError", "convert", "synth"]

_LAZY = {"ConvertResult": "spec2img.api", "SpectrogramConfig": "spec2img.config", "Spec2ImgError": "spec2img.errors"}


class _CallableModule(types.ModuleType):
    """A submodule whose name is also an API verb: calling it calls ``spec2img.api.<name>``."""

    def __call__(self, *args, **kwargs):
        from . import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    """``spec2img`` itself: when the import system binds the ``convert`` / ``synth`` submodules
    to it, they become :class:`_CallableModule`."""

    def __setattr__(self, name, value):
        if name in ("convert", "synth") and type(value) is types.ModuleType:
            value.__class__ = _CallableModule
        super().__setattr__(name, value)


def __getattr__(name: str):
    if name in ("convert", "synth"):
        return importlib.import_module(f"{__name__}.{name}")  # bound (callable) by _Package.__setattr__
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])


sys.modules[__name__].__class__ = _Package
