"""Finding the EfficientAT checkpoint: explicit file, env var, torch cache, download (local only).
The shipped copy (which wins over the cache) is tested in test_assets.py."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import pytest

from classify import cli
from classify.models.backbones import weights as W
from classify.errors import WeightsError

FAKE = b"fake EfficientAT checkpoint bytes\n" * 100


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    """An empty torch hub cache under tmp_path, no env var, no shipped copy, downloads only from
    127.0.0.1:9."""
    import classify.models.assets

    monkeypatch.setattr(classify.models.assets, "asset_root", lambda: None)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(W.ENV_VAR, raising=False)
    monkeypatch.setattr(W, "URL", "http://127.0.0.1:9/mn04_as_mAP_432.pt")  # nothing listens there
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture
def file_server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    (root / W.FILENAME).write_bytes(FAKE)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_cache_path_follows_torch_home(empty_cache):
    assert W.cache_path() == empty_cache / W.FILENAME


def test_download_from_local_server_into_cache(empty_cache, file_server):
    digest = hashlib.sha256(FAKE).hexdigest()
    path = W.resolve_weights(url=f"{file_server}/{W.FILENAME}", sha256=digest)
    assert path == empty_cache / W.FILENAME
    assert path.read_bytes() == FAKE
    # Second call: the cache wins, no network (the default URL is unreachable).
    assert W.resolve_weights() == path


def test_download_from_file_url(empty_cache, tmp_path):
    src = tmp_path / "mirror.pt"
    src.write_bytes(FAKE)
    path = W.resolve_weights(url=src.as_uri(), sha256=hashlib.sha256(FAKE).hexdigest())
    assert path.read_bytes() == FAKE


def test_checksum_mismatch_removes_the_download(empty_cache, file_server):
    with pytest.raises(WeightsError, match="sha256"):
        W.resolve_weights(url=f"{file_server}/{W.FILENAME}", sha256="0" * 64)
    assert not (empty_cache / W.FILENAME).exists()


def test_offline_message_names_all_places(empty_cache):
    with pytest.raises(WeightsError) as err:
        W.resolve_weights()
    msg = str(err.value)
    assert "\n" not in msg
    for part in (W.FILENAME, W.ENV_VAR, str(empty_cache), "127.0.0.1:9", "--weights FILE"):
        assert part in msg


def test_no_download_flag_never_touches_network(empty_cache):
    with pytest.raises(WeightsError, match="pass --weights FILE"):
        W.resolve_weights(download=False)


def test_explicit_file_then_env_var_then_cache(empty_cache, tmp_path, monkeypatch):
    explicit, env, cached = tmp_path / "a.pt", tmp_path / "b.pt", empty_cache / W.FILENAME
    for p in (explicit, env, cached):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(FAKE)
    monkeypatch.setenv(W.ENV_VAR, str(env))
    assert W.resolve_weights(explicit) == explicit
    assert W.resolve_weights() == env
    monkeypatch.delenv(W.ENV_VAR)
    assert W.resolve_weights() == cached


def test_missing_explicit_files_are_errors_not_downloads(empty_cache, tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="no such weights file"):
        W.resolve_weights(tmp_path / "nope.pt")
    monkeypatch.setenv(W.ENV_VAR, str(tmp_path / "gone.pt"))
    with pytest.raises(WeightsError, match=W.ENV_VAR):
        W.resolve_weights()


def test_cli_tag_offline_is_one_error_line(empty_cache, tmp_path, capsys):
    assert cli.main(["tag", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: EfficientAT weights mn04_as_mAP_432.pt not found")
