"""The spec2img CLI, run in-process: exit codes and one-line errors, never tracebacks."""

import pytest

from spec2img.cli import main
from spec2img.manifest import read_manifest


def test_convert_cli_writes_images_manifest_and_config(two_class_dir, tmp_path, capsys):
    out = tmp_path / "img"
    assert main([str(two_class_dir), str(out), "--preset", "logmel", "--sr", "22050", "--n-mels", "64", "-j", "1"]) == 0
    assert (out / "spectrogram.json").exists() and len(read_manifest(out)) == 6
    assert "6 converted, 0 up to date, 0 failed" in capsys.readouterr().err


def test_failed_clip_gives_exit_1_and_a_line_naming_it(two_class_dir, tmp_path, capsys):
    (two_class_dir / "low" / "junk.wav").write_bytes(b"junk")
    assert main([str(two_class_dir), str(tmp_path / "img"), "-j", "1", "-q"]) == 1
    err = capsys.readouterr().err
    assert "junk.wav: not audio that libsndfile can decode" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "extra, match",
    [(["--hop-length", "-5"], "error: hop_length=-5 must be a positive integer"),
     (["--preset", "nope"], "error: preset 'nope' is unknown; choose one of logmel, imagenet, mfcc, efficientat"),
     (["--labels", "missing.csv"], "error: missing.csv: labels CSV not found"),
     (["--jobs", "0"], "error: --jobs 0 must be at least 1"),
     (["--tile-hop", "1"], "error: tile_hop needs tile")],
)
def test_user_mistakes_get_one_line(two_class_dir, tmp_path, capsys, extra, match):
    assert main([str(two_class_dir), str(tmp_path / "img"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(match) and len(err.splitlines()) == 1


def test_unknown_flag_is_argparse_usage_error(two_class_dir, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([str(two_class_dir), str(tmp_path / "img"), "--n-ffft", "10"])
    assert exc.value.code == 2
