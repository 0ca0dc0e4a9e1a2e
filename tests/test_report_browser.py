"""Real-browser test of the report: headless Debian Chromium via Selenium, page loaded from file://."""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from classify.report import ReportConfig, build_report
from classify.report.synthetic import write_synthetic_run

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.environ.get("CI"):
            pytest.fail("CI is set but /usr/bin/chromium or /usr/bin/chromedriver is missing "
                        "(.ci/run installs chromium and chromium-driver)")
        pytest.skip("needs Debian's chromium + chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver); "
                    "apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def _severe(logs):
    return [e for e in logs if e.get("level") == "SEVERE"]


def _load(driver, index: Path) -> None:
    driver.get(index.resolve().as_uri())
    for _ in range(100):
        if driver.execute_script("return document.documentElement.classList.contains('ready')"):
            return
        time.sleep(0.05)
    raise AssertionError(f"report.js never finished; console: {driver.get_log('browser')}")


def _all_images_loaded(driver) -> list[str]:
    """Force lazy images to load, wait, and return the src of every image that did not decode."""
    driver.execute_script("document.querySelectorAll('img').forEach(i => { i.loading = 'eager'; });")
    deadline = time.time() + 15
    while time.time() < deadline:
        if driver.execute_script("return Array.from(document.images).every(i => i.complete)"):
            break
        time.sleep(0.1)
    return driver.execute_script(
        "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")


def _audio_files(driver) -> list[Path]:
    srcs = driver.execute_script(
        "return Array.from(document.querySelectorAll('audio[src], audio source[src]')).map(a => a.src)")
    return [Path(unquote(urlparse(s).path)) for s in srcs]


def test_report_in_chromium(driver, tmp_path):
    paths = write_synthetic_run(tmp_path, n_classes=6, n_clips=30, tiles=2, n_audio=20)
    index = build_report(paths["run"])
    _load(driver, index)
    from selenium.webdriver.common.by import By

    dup = driver.execute_script(
        "const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);"
        "return ids.filter((x, k) => ids.indexOf(x) !== k)")
    assert dup == []

    # every image resolves (thumbnails, plots), every referenced audio file exists
    assert _all_images_loaded(driver) == []
    n_img = driver.execute_script("return document.images.length")
    assert n_img > 10
    audio = _audio_files(driver)
    assert audio, "top losses should carry audio players"
    missing = [a for a in audio if not a.is_file()]
    assert missing == []
    # the browser can decode the first player's audio (metadata loads, no MediaError)
    state = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const a = document.querySelector('#top-losses audio');
        a.preload = 'metadata';
        a.addEventListener('loadedmetadata', () => done(['ok', a.readyState, a.duration]));
        a.addEventListener('error', () => done(['error', a.error && a.error.code]));
        a.load();""")
    assert state[0] == "ok" and state[1] >= 1, state

    # t-SNE: one point per validation item
    n_valid = 30 * 2
    assert len(driver.find_elements(By.CSS_SELECTOR, "#tsne-svg circle.pt")) == n_valid

    # clicking a confusion-matrix cell lists its clips in the drawer
    cell = driver.find_element(By.CSS_SELECTOR, "#cm rect.cm-cell.has:not([data-i='0'][data-j='0'])")
    i, j = int(cell.get_attribute("data-i")), int(cell.get_attribute("data-j"))
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    cell.click()
    drawer = driver.find_element(By.ID, "drawer")
    assert drawer.is_displayed()
    cards = drawer.find_elements(By.CSS_SELECTOR, ".card")
    expected = driver.execute_script(f"return JSON.parse(document.getElementById('report-data').textContent).cells['{i},{j}'].length")
    assert len(cards) == expected > 0
    assert _all_images_loaded(driver) == []
    driver.save_screenshot(str(tmp_path / "report_drawer.png"))
    driver.find_element(By.ID, "drawer-close").click()

    # a most-confused pair row opens its clips too; sorting the per-class table works
    driver.execute_script("document.querySelector('#pairs tr.pair').click()")
    assert drawer.is_displayed() and drawer.find_elements(By.CSS_SELECTOR, ".card")
    driver.find_element(By.ID, "drawer-close").click()
    driver.execute_script("document.querySelector('#class-table tr.cls').click()")
    assert drawer.is_displayed() and "misclassified" in driver.find_element(By.ID, "drawer-title").text
    driver.find_element(By.ID, "drawer-close").click()
    driver.execute_script("document.querySelector('#class-table th[data-col=\"3\"]').click()")
    f1 = driver.execute_script(
        "return Array.from(document.querySelectorAll('#class-table tbody tr td:nth-child(4)')).map(td => +td.dataset.v)")
    assert f1 == sorted(f1)

    # clicking a t-SNE point shows it (and plays it when its audio is in the report)
    driver.execute_script("document.querySelector('#tsne-svg circle.pt').dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    assert driver.find_elements(By.CSS_SELECTOR, "#tsne-info .card")

    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(tmp_path / "report.png"))
    for anchor in ("confusion", "losses", "tsne"):
        driver.execute_script(f"document.getElementById('{anchor}').scrollIntoView()")
        driver.save_screenshot(str(tmp_path / f"report_{anchor}.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert _severe(driver.get_log("browser")) == []


def test_multilabel_and_cv_reports_in_chromium(driver, tmp_path):
    for kind, kwargs in (("multi", {"multilabel": True}), ("cv", {"folds": 3})):
        paths = write_synthetic_run(tmp_path / kind, n_classes=5, n_clips=20, tiles=1, **kwargs)
        index = build_report(paths["run"], config=ReportConfig(tsne=kind == "cv"))
        _load(driver, index)
        assert _all_images_loaded(driver) == []
        assert all(a.is_file() for a in _audio_files(driver))
        n = driver.execute_script("return document.querySelectorAll('#tsne-svg circle.pt').length")
        assert n == (20 if kind == "cv" else 0)
        driver.save_screenshot(str(tmp_path / f"report_{kind}.png"))
        assert _severe(driver.get_log("browser")) == []
