"""classify serve in a real browser: headless Debian Chromium with a fake microphone (a WAV this test
writes), driven by Selenium against a real `classify serve` process on 127.0.0.1."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from classify.prediction.predict import predict
from conftest import tone, write
from serve_helpers import CHROMEDRIVER, CHROMIUM, ServerProcess, fake_mic_chromium, linear_onnx

WINDOW, HOP = 2.0, 0.5
MIC_SR = 48000

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real Chromium: seconds per test


def _need_chromium():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("CI is set but /usr/bin/chromium or /usr/bin/chromedriver is missing "
                        "(.ci/run installs chromium and chromium-driver)")
        pytest.skip("needs Debian's chromium + chromium-driver; apt-get install -y chromium chromium-driver")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny ONNX model, the microphone's WAV (the steady tone the model is surest about) and a server."""
    _need_chromium()
    root = tmp_path_factory.mktemp("serve_browser")
    model = linear_onnx(root / "run", seed=0)
    best = None
    for f in (300.0, 700.0, 1000.0, 1800.0, 2600.0):  # whole cycles in 3 s: the looped file has no click
        y = tone(f, sr=MIC_SR, duration=3.0, amp=0.4)
        path = write(root / f"mic_{int(f)}.wav", y, MIC_SR, "PCM_16")
        p = np.sort(predict([model], [path], backend="onnx").probs[0])
        if best is None or p[-1] - p[-2] > best[0]:
            best = (p[-1] - p[-2], path)
    with ServerProcess(str(model), "--window", str(WINDOW), "--hop", str(HOP)) as server:
        yield {"model": model, "mic": best[1], "server": server, "root": root}


@pytest.fixture(scope="module")
def driver(setup, tmp_path_factory):
    drv = fake_mic_chromium(setup['mic'], tmp_path_factory.mktemp('chromium-profile'))
    yield drv
    drv.quit()


def _open(driver, url: str) -> None:
    driver.get(url + "/")
    _wait(driver, "document.documentElement.classList.contains('ready') && !!window.classifyServe.model", 30)
    driver.get_log("browser")  # start each test with an empty console


def _wait(driver, js: str, timeout: float):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = driver.execute_script("return " + js)
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {js}; page errors: "
                         f"{driver.execute_script('return window.classifyServe && window.classifyServe.errors')}; "
                         f"console: {driver.get_log('browser')}")


def _severe(driver):
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_live_microphone_labels_equal_classify_predict(setup, driver):
    _open(driver, setup["server"].url)
    driver.find_element("id", "mic-start").click()
    # full windows only (the first answers cover the first seconds of capture)
    _wait(driver, f"window.classifyServe.live.filter(e => e.seconds > {WINDOW - 0.05}).length >= 3", 60)
    live = driver.execute_script(f"return window.classifyServe.live.filter(e => e.seconds > {WINDOW - 0.05})")
    want = predict([setup["model"]], [setup["mic"]], backend="onnx")
    classes, p = want.classes, want.probs[0]
    top = classes[int(np.argmax(p))]
    # every full window hears the same steady tone: the labels are predict's, window after window
    # (a median, so that one capture glitch on a busy machine does not decide the test)
    got = np.array([[entry["probs"][c] for c in classes] for entry in live])
    assert np.allclose(np.median(got, 0), p, atol=0.01), (got, p)
    firsts = [entry["labels"][0]["label"] for entry in live]
    assert firsts.count(top) >= 0.66 * len(firsts), (firsts, top)
    shown = driver.execute_script(
        "return Array.from(document.querySelectorAll('#live-labels li')).map(li => li.dataset.label)")
    assert shown[0] == top and len(shown) == len(classes)
    assert driver.execute_script("const i = document.getElementById('live-spec'); "
                                 "return i.complete && i.naturalWidth > 0 && !i.hidden")
    assert driver.execute_script("return document.getElementById('error').hidden")

    driver.find_element("id", "mic-stop").click()
    assert driver.execute_script(
        "return window.classifyServe.stream.getTracks().every(t => t.readyState === 'ended')")
    n = driver.execute_script("return window.classifyServe.live.length")
    time.sleep(4 * HOP)
    assert driver.execute_script("return window.classifyServe.live.length") == n  # capture really stopped
    assert driver.find_element("id", "mic-status").text == "microphone off"
    assert _severe(driver) == []


def test_upload_shows_the_timeline_of_classify_predict(setup, driver, tmp_path):
    sr = 16000
    y = np.concatenate([tone(400, sr=sr, duration=2.0, noise=0.02), tone(2400, sr=sr, duration=2.5, noise=0.02, seed=1)])
    clip = write(tmp_path / "two_tones.flac", y, sr)
    _open(driver, setup["server"].url)
    driver.find_element("id", "file").send_keys(str(clip))
    _wait(driver, "document.querySelectorAll('#timeline-table tbody tr').length > 0", 60)
    rows = driver.execute_script(
        "return Array.from(document.querySelectorAll('#timeline-table tbody tr'))"
        ".map(tr => Array.from(tr.cells).map(td => td.textContent))")
    want = predict([setup["model"]], [clip], backend="onnx", timeline=True).timeline
    assert len(rows) == len(want) > 5
    for row, (_, w) in zip(rows, want.iterrows()):
        assert float(row[0]) == pytest.approx(w["start"], abs=5e-4) and float(row[1]) == pytest.approx(w["end"], abs=5e-4)
        assert row[2] == w["label"] and float(row[3]) == pytest.approx(w["prob"], abs=2e-6)
    # spectrogram decoded, audio playable, the cursor follows the player
    assert driver.execute_script("const i = document.getElementById('upload-spec'); return i.complete && i.naturalWidth > 0")
    assert driver.execute_script("return document.getElementById('player').src.startsWith('blob:')")
    _wait(driver, "document.getElementById('player').readyState >= 1", 20)
    driver.execute_script("document.getElementById('player').currentTime = 3.0")
    _wait(driver, "parseFloat(document.getElementById('tl-cursor').style.left) > 50", 10)
    left = driver.execute_script("return parseFloat(document.getElementById('tl-cursor').style.left)")
    assert left == pytest.approx(100 * 3.0 / 4.5, abs=1.0)
    assert _severe(driver) == []


def test_bad_upload_shows_a_readable_message_and_the_page_keeps_working(setup, driver, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("this is a text file with a .wav name\n" * 20)
    _open(driver, setup["server"].url)
    driver.find_element("id", "file").send_keys(str(bad))
    _wait(driver, "!document.getElementById('error').hidden", 30)
    msg = driver.find_element("id", "error").text
    assert "notes.wav" in msg and "not audio" in msg and "convert it" in msg
    good = write(tmp_path / "ok.wav", tone(900, sr=8000, duration=1.5, noise=0.02), 8000, "PCM_16")
    driver.execute_script("document.getElementById('file').value = ''")
    driver.find_element("id", "file").send_keys(str(good))
    _wait(driver, "document.getElementById('error').hidden && document.querySelectorAll('#timeline-table tbody tr').length > 0", 30)
    # the 422 answer itself is the only console error (Chromium logs failed fetches)
    assert all("422" in e["message"] for e in _severe(driver))


def test_multi_label_page_shows_every_label_above_threshold(setup, driver, tmp_path):
    model = linear_onnx(setup["root"] / "multi", seed=2, multi_label=True, threshold=0.5)
    clip = write(tmp_path / "chord.wav", tone(700, sr=8000, duration=2.0) + tone(1000, sr=8000, duration=2.0),
                 8000, "PCM_16")
    want = predict([model], [clip], backend="onnx")
    above = want.table["labels"].iloc[0].split(";")
    assert 0 < len(above) < len(want.classes)  # the seed makes some labels pass and some not
    with ServerProcess(str(model)) as server:
        _open(driver, server.url)
        assert "multi-label, threshold 0.50" in driver.find_element("id", "model-line").text
        driver.find_element("id", "file").send_keys(str(clip))
        _wait(driver, "document.querySelectorAll('#upload-labels li').length > 0", 30)
        bold = driver.execute_script(
            "return Array.from(document.querySelectorAll('#upload-labels li.above')).map(li => li.dataset.label)")
        assert sorted(bold) == sorted(above)
        assert _severe(driver) == []
