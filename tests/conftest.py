import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from imageset import make_image_set  # noqa: E402


@pytest.fixture(scope="session")
def tiny_images(tmp_path_factory) -> Path:
    """3 classes x 6 one-second clips from 3 recordings each; 32 mel rows x 63 frames."""
    return make_image_set(tmp_path_factory.mktemp("tiny"), n_classes=3, per_class=6, groups_per_class=3)


@pytest.fixture(scope="session")
def multi_images(tmp_path_factory) -> Path:
    """Multi-label with a manually_verified column (every fourth clip unverified)."""
    return make_image_set(tmp_path_factory.mktemp("multi"), n_classes=3, per_class=6, groups_per_class=3,
                          multi_label=True, verified=True)
