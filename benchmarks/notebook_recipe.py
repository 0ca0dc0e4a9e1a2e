"""The public Kaggle notebooks' spectrogram method, kept only as a benchmark baseline.

``librosa.load`` at the native rate, ``librosa.feature.melspectrogram`` with 128 mels,
``power_to_db(ref=np.max)``, ``librosa.display.specshow`` on a matplotlib figure with the axes
hidden, ``savefig`` at dpi=100 (a 640x480 PNG with margins). Not used by the tool.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import librosa.display
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def specshow_png(audio_path: Path, png_path: Path) -> None:
    """Render ``audio_path`` to ``png_path`` the way the public notebooks did."""
    y, sr = librosa.load(str(audio_path), sr=None)
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_mels=128)
    S_db = librosa.power_to_db(S, ref=np.max)
    fig = plt.figure(figsize=(6.4, 4.8))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.axis("off")
    librosa.display.specshow(S_db, sr=sr, ax=ax)
    Path(png_path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(str(png_path), dpi=100)
    plt.close(fig)
