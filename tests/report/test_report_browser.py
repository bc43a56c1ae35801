"""The interactive report in a real browser (headless Chromium, as the app's tests): with JavaScript
the explorer lays the hovered word's map over the image and the sliders pick time group and layer;
without it the explorer stays hidden and the static figures carry the page. Screenshots go to
``$DIFFEXPLAIN_SCREENSHOTS`` when set (the docs' are made so)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from diffexplain.cli.main import cli
from tests.reliability.test_injection import CHROMIUM, DRIVER, browser_or_skip


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    from tests.families import tiny_sd

    root = tmp_path_factory.mktemp("report")
    folder = tiny_sd(root).config["_name_or_path"]
    out = root / "attention"
    result = CliRunner().invoke(cli, ["attention", "a red circle, and a blue square", "--model", str(folder),
                                      "--steps", "3", "--views", "time,layer", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out / "report.html"


def _screenshot(driver, name: str) -> None:
    folder = os.environ.get("DIFFEXPLAIN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / name))


def test_hovering_a_word_and_moving_the_sliders_change_the_overlay(page):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    driver = browser_or_skip()
    try:
        driver.set_window_size(1200, 900)
        driver.get(page.as_uri())
        explorer = driver.find_element(By.ID, "dx-explorer")
        assert explorer.is_displayed()
        heat = driver.find_element(By.CSS_SELECTOR, ".dx-heat")
        first = heat.get_attribute("src")
        assert first.startswith("data:image/png;base64,") and heat.get_attribute("data-shown") == "0/0/0"
        buttons = driver.find_elements(By.CSS_SELECTOR, "#dx-explorer button[data-word]")
        assert [b.text for b in buttons] == ["a", "red", "circle,", "and", "a", "blue", "square"]
        ActionChains(driver).move_to_element(buttons[2]).perform()  # hover "circle,"
        assert heat.get_attribute("data-shown") == "2/0/0" and heat.get_attribute("src") != first
        assert buttons[2].get_attribute("aria-pressed") == "true"
        assert "circle," in driver.find_element(By.CSS_SELECTOR, ".dx-label").text
        for name, expected in (("time", "2/1/0"), ("layer", "2/1/1")):
            driver.execute_script(
                "var s = document.querySelector('input[name=' + arguments[0] + ']'); s.value = 1;"
                "s.dispatchEvent(new Event('input'));", name)
            assert heat.get_attribute("data-shown") == expected
        ActionChains(driver).move_to_element(explorer).perform()
        _screenshot(driver, "report-explorer.png")
        severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe  # the script ran under the page's policy, nothing was refused
    finally:
        driver.quit()


def test_without_javascript_the_explorer_stays_hidden_and_the_figures_remain(page):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    browser_or_skip().quit()  # skips where there is no browser
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        driver.set_window_size(1200, 900)
        driver.get(page.as_uri())
        assert not driver.find_element(By.ID, "dx-explorer").is_displayed()
        tiles = [i for i in driver.find_elements(By.CSS_SELECTOR, ".tiles img") if i.is_displayed()]
        assert len(tiles) == 7  # one overlay per word, static
        views = [h.text for h in driver.find_elements(By.TAG_NAME, "h3")]
        assert "time view" in views and "layer view" in views
        _screenshot(driver, "report-no-javascript.png")
    finally:
        driver.quit()
