"""``classify serve``: a local web page and JSON API that label audio live (microphone) or uploaded.

ONNX only: importing this package, or serving an ``.onnx``, never imports torch or fastai.
"""

from .engine import Engine, ServeConfig, UploadError

__all__ = ["Engine", "ServeConfig", "UploadError", "create_app", "serve"]


def __getattr__(name):  # the web framework loads only when the app is asked for
    if name in ("create_app", "serve"):
        from . import app

        return getattr(app, name)
    raise AttributeError(name)
