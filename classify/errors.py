"""classify's user-facing errors share spec2img's base so one handler serves both CLIs."""

from spec2img.errors import Spec2ImgError


class ClassifyError(Spec2ImgError):
    """A user mistake in training, reporting or prediction (bad run folder, missing weights, ...)."""


class WeightsError(ClassifyError):
    """Pretrained weights cannot be found, downloaded or loaded."""


class RunFolderError(ClassifyError):
    """A run folder is incomplete, corrupted or from an incompatible version."""
