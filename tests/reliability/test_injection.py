"""Hostile strings in every page the project writes, opened in a real browser (headless Chromium
driven by Selenium): no injected script runs and every page carries a strict Content-Security-Policy.

The strings go where users' text goes: the prompt and its words, audit group names, a model
folder's name, a pipeline argument's value. Each would set ``window.__pwned`` or log "PWNED" if it
ran. Skipped, with the reason printed, where Debian's ``chromium`` and ``chromium-driver`` or
Selenium are missing (``make test`` installs them where it can).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from diffexplain.cli.main import cli
from diffexplain.report.html import EXPLORER_MARK

# short: the tiny CLIP's small vocabulary splits them into many tokens, and its window is 77
HOSTILE = "<script>__pwned=1;console.log('PWNED')</script>"
IMG = "<img src=x onerror=__pwned=2>"
ATTR = "\"'><svg onload=__pwned=3>"
CHROMIUM, DRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


def browser_or_skip():
    """A headless Chromium driven by Selenium, or a pytest skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    if not (CHROMIUM.exists() and DRIVER.exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (apt-get install chromium "
                    "chromium-driver); the browser checks did not run")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(str(DRIVER)), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = browser_or_skip()
    yield driver
    driver.quit()


def check_page(driver, page: Path) -> None:
    driver.get(page.as_uri())
    policy = driver.execute_script(
        "var m = document.querySelector('meta[http-equiv=\"Content-Security-Policy\"]'); return m && m.content")
    from diffexplain.report.html import content_security_policy, explorer_script

    # no script, or exactly the package's attention explorer (by hash): never 'unsafe-inline'
    assert policy in (content_security_policy(), content_security_policy([explorer_script()])), (page, policy)
    flag = driver.execute_script("return window.__pwned === undefined ? null : window.__pwned")
    assert flag is None, f"{page}: injected script ran ({flag})"
    logs = driver.get_log("browser")
    assert not any("PWNED" in entry["message"] for entry in logs), (page, logs)
    assert not [e for e in logs if e["level"] == "SEVERE"], (page, logs)  # a refused script or image lands here
    if EXPLORER_MARK in page.read_text():  # the explorer ran: its script was allowed, the hostile words are text
        assert driver.execute_script("return document.getElementById('dx-explorer').hidden") is False
        assert driver.execute_script("return document.querySelector('.dx-heat').dataset.shown") == "0/0/0"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """Run every command that writes a page with the hostile strings; returns the pages."""
    from tests.families import tiny_sd
    from tests.helpers import tiny_image_pipeline, tiny_paint_by_example

    root = tmp_path_factory.mktemp("hostile")
    folder = root / f"model{HOSTILE.replace('/', '_')}"
    tiny_sd(root)
    shutil.copytree(root / "sd", folder)
    runner = CliRunner()
    out = {}

    def run(name, *args):
        result = runner.invoke(cli, [str(a) for a in args])
        assert result.exit_code == 0, (name, result.output)
        out[name] = Path(args[args.index("--out") + 1]) / "report.html"

    common = ("--steps", 2, "--seeds", 1, "--embedder", "pixel")
    run("explain", "explain", f"a red {HOSTILE}", "--model", folder, "--method", "shapley", *common, "--attention",
        "--pipeline-arg", f"negative_prompt={HOSTILE}", "--out", root / "explain")
    run("attention", "attention", f"red {IMG} {ATTR}", "--model", folder, "--steps", 2, "--views", "time,layer",
        "--out", root / "attention")
    tiny_image_pipeline(root, "pix2pix")
    source = root / "source.png"
    Image.fromarray(np.full((16, 16, 3), 120, np.uint8)).save(source)
    run("edit", "edit", f"make {ATTR} red", "--model", root / "tiny-pix2pix", "--image", source,
        "--method", "shapley", *common, "--out", root / "edit")
    tiny_paint_by_example(root)
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[4:12, 4:12] = 255
    Image.fromarray(mask).save(root / "mask.png")
    run("i2am", "i2am", "--model", root / "tiny-pbe", "--image", source, "--mask", root / "mask.png",
        "--reference", source, "--steps", 2, "--out", root / f"i2am{HOSTILE.replace('/', '_')}")
    prompts = root / "prompts.txt"
    prompts.write_text(f"{HOSTILE}\ta red circle\n{IMG}\ta {ATTR} square\n")
    run("audit", "audit", prompts, "--model", folder, "--method", "shapley", *common, "--out", root / "audit")
    return out


@pytest.mark.parametrize("name", ["explain", "attention", "edit", "i2am", "audit"])
def test_no_injected_script_runs_on_any_page(browser, pages, name):
    page = pages[name]
    html = page.read_text()
    assert HOSTILE not in html and "<svg onload" not in html and "<img src=x" not in html
    check_page(browser, page)


def test_the_pages_show_the_hostile_text_as_text(browser, pages):
    browser.get(pages["explain"].as_uri())
    assert "<script>__pwned=1" in browser.find_element("tag name", "body").text
    data = json.loads((pages["explain"].parent / "explanation.json").read_text())
    assert HOSTILE in data["metadata"]["prompt"]


def test_the_check_sees_a_script_that_runs(browser, tmp_path):
    """Control: the same strings in a page without escaping or policy do run, and the check says so."""
    page = tmp_path / "raw.html"
    page.write_text(f"<!doctype html><html><body>{HOSTILE}{IMG}</body></html>")
    with pytest.raises(AssertionError):
        check_page(browser, page)
    assert browser.execute_script("return window.__pwned") in (1, 2)
