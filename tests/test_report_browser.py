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

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # a real Chromium: seconds per test


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


def test_multi_label_and_cv_reports_in_chromium(driver, tmp_path):
    for kind, kwargs in (("multi", {"multi_label": True}), ("cv", {"folds": 3})):
        paths = write_synthetic_run(tmp_path / kind, n_classes=5, n_clips=20, tiles=1, **kwargs)
        index = build_report(paths["run"], config=ReportConfig(tsne=kind == "cv"))
        _load(driver, index)
        assert _all_images_loaded(driver) == []
        assert all(a.is_file() for a in _audio_files(driver))
        n = driver.execute_script("return document.querySelectorAll('#tsne-svg circle.pt').length")
        assert n == (20 if kind == "cv" else 0)
        driver.save_screenshot(str(tmp_path / f"report_{kind}.png"))
        assert _severe(driver.get_log("browser")) == []


# ------------------------------------------------------------------ new report parts, audit page
HOSTILE = ["<img src=x onerror=\"window.__pwned=1\">", "$x^$", "a&b \"q\"", "</script><b>"]


def _no_overflow(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def test_suspects_tsne_palette_and_escaping_in_chromium(driver, tmp_path):
    from selenium.webdriver.common.by import By

    driver.set_window_size(1280, 1000)
    classes = HOSTILE + [f"class_{k:02d}" for k in range(26)]
    paths = write_synthetic_run(tmp_path, classes=classes, n_clips=90, tiles=1, folds=3, flipped=6)
    # an audit page where spec2img puts it by default (AUDIO_DIR/../audit) is linked from the dataset section
    from spec2img.audit import audit

    audit(paths["audio"], out_dir=paths["audio"].parent / "audit", jobs=1)
    index = build_report(paths["run"])
    _load(driver, index)
    assert _severe(driver.get_log("browser")) == []
    assert driver.execute_script("return window.__pwned === undefined")
    assert _no_overflow(driver)
    data = driver.execute_script("return JSON.parse(document.getElementById('report-data').textContent)")
    # suspect cards: one per listed suspect, each with given/suggested names as text, a player loading metadata
    cards = driver.find_elements(By.CSS_SELECTOR, "#suspect-cards .card")
    assert len(cards) == len(data["suspects"]) > 0
    first = data["suspects"][0]
    assert f"given: {classes[first['g']]}" in cards[0].text and f"suggested: {classes[first['s']]}" in cards[0].text
    assert driver.execute_script(
        "return Array.from(document.querySelectorAll('audio')).every(a => a.preload === 'metadata')")
    # t-SNE: 30 classes, 30 distinct colours
    colours = driver.execute_script(
        "return Array.from(document.querySelectorAll('#tsne-legend .lg i')).map(i => getComputedStyle(i).backgroundColor)")
    assert len(colours) == len(classes) and len(set(colours)) == len(classes)
    # legend click highlights one class; its confusion pairs appear as links that open the clips
    lg = driver.find_element(By.CSS_SELECTOR, "#tsne-legend .lg[data-i='5']")
    driver.execute_script("arguments[0].click()", lg)
    n5 = sum(1 for y in data["items"]["y"] if y == 5)
    assert driver.execute_script("return document.getElementById('tsne-svg').classList.contains('focus')")
    assert len(driver.find_elements(By.CSS_SELECTOR, "#tsne-svg .pt.hi")) == n5
    links = driver.find_elements(By.CSS_SELECTOR, "#tsne-pairs a.pairlink")
    if links:
        driver.execute_script("arguments[0].click()", links[0])
        assert driver.find_element(By.ID, "drawer").is_displayed()
        driver.find_element(By.ID, "drawer-close").click()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#tsne-legend .lg.on")) == 2  # the pair's two classes
        driver.execute_script("arguments[0].click()", lg)  # back to the one class
        assert len(driver.find_elements(By.CSS_SELECTOR, "#tsne-svg .pt.hi")) == n5
    driver.execute_script("arguments[0].click()", lg)  # again: cleared
    assert not driver.execute_script("return document.getElementById('tsne-svg').classList.contains('focus')")
    # the search box highlights every class whose name matches
    box = driver.find_element(By.ID, "tsne-search")
    box.send_keys("class_1")
    hits = [i for i, c in enumerate(classes) if "class_1" in c]
    assert driver.find_element(By.ID, "tsne-found").text == f"{len(hits)} classes"
    n_hi = sum(1 for y in data["items"]["y"] if y in hits)
    assert len(driver.find_elements(By.CSS_SELECTOR, "#tsne-svg .pt.hi")) == n_hi
    # hostile names are shown as text in the legend, the confusion matrix and the drawer
    assert HOSTILE[0] in driver.find_element(By.ID, "tsne-legend").text
    # the dataset section links the audit page, which links back
    driver.find_element(By.ID, "audit-link").click()
    assert driver.execute_script("return document.documentElement.classList.contains('ready')")
    assert driver.find_element(By.CSS_SELECTOR, "nav a[href='index.html']")
    assert _severe(driver.get_log("browser")) == []
    driver.set_window_size(1400, 1000)


def test_head_only_report_in_chromium(driver, tmp_path):
    paths = write_synthetic_run(tmp_path, n_classes=4, n_clips=16, tiles=1, head_only=True)
    _load(driver, build_report(paths["run"], config=ReportConfig(tsne=False)))
    assert driver.execute_script("return document.getElementById('training') === null")
    assert driver.execute_script("return !!document.getElementById('headfit')")
    assert "Head-only fit" in driver.execute_script("return document.querySelector('nav').textContent")
    assert _severe(driver.get_log("browser")) == []


def test_audit_page_in_chromium(driver, tmp_path):
    import numpy as np
    import soundfile as sf
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from spec2img.audit import audit

    driver.set_window_size(1280, 1000)
    d = tmp_path / "audio"
    rng = np.random.default_rng(0)
    for k, name in enumerate(["<b>bold</b>", "$x^$", "a" * 120]):
        for i in range(4):
            y = 0.1 * rng.standard_normal(8000 * (1 + i))
            if i == 0:
                y[100:110] = 1.0  # clipped
            if i == 1 and k == 0:
                y[:] = 0.0  # silent
            (d / name[:60]).mkdir(parents=True, exist_ok=True)
            sf.write(d / name[:60] / f"clip {i} {'x' * 80}.wav", y.astype(np.float32), 8000, subtype="FLOAT")
    (d / "broken.wav").write_bytes(b"RIFFgarbage")
    res = audit(d, out_dir=tmp_path / "audit", jobs=1)
    driver.get((tmp_path / "audit" / "audit.html").resolve().as_uri())
    assert driver.execute_script("return document.documentElement.classList.contains('ready')")
    assert _severe(driver.get_log("browser")) == []
    assert _no_overflow(driver)
    assert "<NA>" not in driver.page_source and "<b>bold</b>" not in driver.page_source.split("<body>")[1]
    rows = lambda: [r for r in driver.find_elements(By.CSS_SELECTOR, "#issue-table tbody tr") if r.is_displayed()]  # noqa: E731
    counts = res.issue_counts()
    assert len(rows()) == int(((res.files["issues"].fillna("") != "") | (res.files["status"] != "ok")).sum())
    Select(driver.find_element(By.ID, "issue-kind")).select_by_value("clipped")
    assert len(rows()) == counts["clipped"] == 3
    assert all("clipped" in r.text for r in rows())
    Select(driver.find_element(By.ID, "issue-kind")).select_by_value("")
    driver.find_element(By.ID, "issue-text").send_keys("broken")
    assert [r.text.split()[0] for r in rows()] == ["broken.wav"]
    driver.find_element(By.ID, "issue-text").clear()
    driver.execute_script("document.getElementById('issue-text').dispatchEvent(new Event('input'))")
    # sort by duration (numeric)
    th = driver.find_element(By.XPATH, "//table[@id='issue-table']//th[text()='duration']")
    th.click()
    col = int(th.get_attribute("data-col")) + 1
    vals = driver.execute_script(
        f"return Array.from(document.querySelectorAll('#issue-table tbody tr td:nth-child({col})')).map(td => td.dataset.v)")
    nums = [float(v) for v in vals if v]
    assert nums == sorted(nums)
    driver.save_screenshot(str(tmp_path / "audit.png"))
    driver.set_window_size(1400, 1000)
