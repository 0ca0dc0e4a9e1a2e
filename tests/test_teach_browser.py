"""Teach mode in a real browser: two headless Chromiums, each with a fake microphone playing its own
WAV (a steady tone; a click train), against one `classify serve --teach` process on 127.0.0.1.
Examples of two classes are recorded through the page's buttons, Train is pressed, and each page's
live label follows what its microphone plays."""

from __future__ import annotations


import numpy as np
import pytest

from conftest import tone, write
from serve_helpers import ServerProcess, fake_mic_chromium
from test_serve_browser import _need_chromium, _severe, _wait

MIC_SR = 48000
pytestmark = [pytest.mark.browser, pytest.mark.slow]


def clicks(*, sr: int, duration: float, rate: float = 8.0, seed: int = 0) -> np.ndarray:
    """Short noise bursts ``rate`` times a second (whole periods: the looped file has no seam)."""
    rng = np.random.default_rng(seed)
    y = np.zeros(int(sr * duration), dtype=np.float32)
    burst = (rng.normal(size=int(0.004 * sr)) * 0.5).astype(np.float32)
    for k in range(int(duration * rate)):
        s = int(k * sr / rate)
        y[s:s + len(burst)] = burst
    return y


def _open(driver, url: str) -> None:
    driver.get(url + "/")
    _wait(driver, "document.documentElement.classList.contains('ready') && "
                  "!document.getElementById('teach').hidden", 60)


def _record(driver, name: str, n: int) -> None:
    for k in range(n):
        before = driver.execute_script(
            f"return window.classifyTeach.state.classes.find(c => c.name === {name!r}).examples.length")
        driver.execute_script(
            f"document.querySelector('.teach-class[data-name=\"{name}\"] .teach-record').click()")
        _wait(driver, f"window.classifyTeach.state.classes.find(c => c.name === {name!r}).examples.length > {before}", 60)


def test_record_two_classes_train_and_the_live_label_follows_the_microphone(tmp_path):
    _need_chromium()
    tone_wav = write(tmp_path / "tone.wav", tone(600.0, sr=MIC_SR, duration=3.0, amp=0.4), MIC_SR, "PCM_16")
    click_wav = write(tmp_path / "clicks.wav", clicks(sr=MIC_SR, duration=3.0), MIC_SR, "PCM_16")
    session = tmp_path / "session"
    with ServerProcess("--teach", str(session), "--window", "2", "--hop", "0.5", timeout=240) as server:
        a = fake_mic_chromium(tone_wav, tmp_path / "profile_a")
        b = fake_mic_chromium(click_wav, tmp_path / "profile_b")
        try:
            _open(a, server.url)
            assert "no model yet" in a.find_element("id", "model-line").text
            for name in ("tone", "clicks"):
                a.find_element("id", "teach-name").send_keys(name)
                a.find_element("id", "teach-add").click()
                _wait(a, f"window.classifyTeach.state.classes.some(c => c.name === {name!r})", 20)
            _record(a, "tone", 3)
            _open(b, server.url)
            _record(b, "clicks", 3)
            # each example can be heard: its audio element points at the session's WAV
            src = a.execute_script("return document.querySelector('.teach-class audio').src")
            assert "/api/teach/examples/ex" in src
            a.find_element("id", "teach-train").click()
            _wait(a, "window.classifyTeach.trained.length === 1 && window.classifyServe.model.n_models === 1", 120)
            t_trained = a.execute_script("return Date.now() / 1000")
            b.execute_script("window.classifyServe.loadModel()")
            _wait(b, "window.classifyServe.model.n_models === 1", 20)
            # the live view uses the new model at once, and its label follows each microphone
            for drv, want in ((a, "tone"), (b, "clicks")):
                _wait(drv, f"window.classifyServe.live.filter(e => e.time > {t_trained} && e.seconds > 1.95)"
                           ".length >= 3", 60)
                live = drv.execute_script(f"return window.classifyServe.live.filter(e => e.time > {t_trained}"
                                          " && e.seconds > 1.95).map(e => e.label)")
                assert live.count(want) >= 0.66 * len(live), (want, live)
                assert drv.find_element("id", "live-label").get_attribute("data-label") in (want, "unknown")
            assert (session / "labels.csv").read_text().count("\n") == 7
            assert (session / "runs" / "teach-001" / "model.pt").is_file()
            assert not a.execute_script("return document.getElementById('teach-zip').hidden")
            assert _severe(a) == [] and _severe(b) == []
        finally:
            a.quit()
            b.quit()
