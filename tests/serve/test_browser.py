"""The web app in a real browser (headless Chromium driven by Selenium, as the report tests):
run a prompt, watch it finish, click words and move the time / layer sliders, open a past run,
browse an audit, upload a non-image, a hostile prompt shown as text with no script run, and two
browser sessions at once finishing with the command line's values. Screenshots go to
``$DIFFEXPLAIN_SCREENSHOTS`` when set."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from tests.reliability.test_injection import HOSTILE, IMG, browser_or_skip  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from click.testing import CliRunner

    from diffexplain.cli.main import cli
    from diffexplain.serve.app import create_app, serve_in_thread
    from tests.families import tiny_sd
    from tests.helpers import tiny_image_pipeline, tiny_paint_by_example

    root = tmp_path_factory.mktemp("app")
    text = tiny_sd(root / "text").config["_name_or_path"]  # a real CLIP tokenizer: any text is a prompt
    edit = tiny_image_pipeline(root / "edit", "pix2pix")
    prompts = root / "prompts.txt"
    prompts.write_text("a red circle\na big blue square\n")
    audit = CliRunner().invoke(cli, ["audit", str(prompts), "--model", str(text), "--method", "shapley", "--seeds",
                                     "1", "--embedder", "pixel", "--out", str(root / "audit"), "--yes"])
    assert audit.exit_code == 0, audit.output
    pbe = tiny_paint_by_example(root / "pbe")
    app = create_app({"tiny": str(text), "edit": str(edit.config["_name_or_path"]),
                      "pbe": str(pbe.config["_name_or_path"])}, root / "results", audits={"colours": root / "audit"})
    instance, thread, url = serve_in_thread(app)
    yield url, root, str(text)
    instance.should_exit = True
    thread.join(timeout=30)


@pytest.fixture(scope="module")
def browser():
    driver = browser_or_skip()
    yield driver
    driver.quit()


def _run(browser, url, model, prompt, method="shapley", source=None):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
    browser.execute_script("delete document.body.dataset.lastState")
    Select(browser.find_element(By.ID, "model")).select_by_visible_text(model)
    Select(browser.find_element(By.ID, "method")).select_by_visible_text(method)
    browser.find_element(By.ID, "prompt").send_keys(prompt)
    seeds = browser.find_element(By.ID, "seeds")
    seeds.clear()
    seeds.send_keys("1")
    if source is not None:
        browser.find_element(By.ID, "source").send_keys(str(source))
    browser.find_element(By.ID, "start").click()


def _screenshot(driver, name: str) -> None:
    import os
    from pathlib import Path

    folder = os.environ.get("DIFFEXPLAIN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.set_window_size(1200, 1000)
        driver.save_screenshot(str(Path(folder) / name))


def _wait_done(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 180).until(lambda d: d.execute_script("return document.body.dataset.lastState"))
    return browser.execute_script("return document.body.dataset.lastState")


def test_a_prompt_runs_to_done_and_each_word_shows_its_own_map(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = server
    _run(browser, url, "tiny", "a big red circle")
    assert _wait_done(browser) == "done"
    words = browser.find_elements(By.CSS_SELECTOR, "button.word")
    assert [w.text for w in words] == ["a", "big", "red", "circle"]
    sources = []
    for word in (words[2], words[3]):
        word.click()
        heat = browser.find_element(By.ID, "heatmap")
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "var i = document.getElementById('heatmap'); return i.complete && i.naturalWidth > 0"))
        sources.append(heat.get_attribute("src"))
    assert "/heatmap/2?view=attention" in sources[0] and "/heatmap/3?view=attention" in sources[1]
    assert "red" not in browser.find_element(By.ID, "heatmap-caption").text  # now the circle's
    for slider, query in (("time", "time=0"), ("layer", "layer=0")):  # position 1: the first group / layer
        browser.execute_script("var s = document.getElementById(arguments[0]); s.value = 1;"
                               "s.dispatchEvent(new Event('input'));", slider)
        assert query in browser.find_element(By.ID, "heatmap").get_attribute("src")
    assert browser.find_element(By.ID, "time-text").text == "0"
    head = browser.find_element(By.ID, "head")
    assert head.is_enabled()  # a layer is chosen: its heads can be
    browser.execute_script("var s = document.getElementById('head'); s.value = 1; s.dispatchEvent(new Event('input'));")
    assert "head=0" in browser.find_element(By.ID, "heatmap").get_attribute("src")
    assert not browser.find_element(By.ID, "view-label").is_displayed()  # a UNet: no output-space maps
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "var i = document.querySelectorAll('#coalitions img'); return i.length === 16 && "
        "Array.from(i).every(x => x.complete && x.naturalWidth > 0)"))  # the coalitions' images, from the cache
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#coalitions figcaption")]
    assert "a big red circle" in captions and "(empty)" in captions
    _screenshot(browser, "app-run.png")
    links = browser.find_elements(By.CSS_SELECTOR, "a.past-run")
    assert links and "a big red circle" in links[0].text
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "a.past-run"))
    browser.find_elements(By.CSS_SELECTOR, "a.past-run")[0].click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.word"))
    assert "a big red circle" in browser.find_element(By.ID, "result-title").text


def test_a_hostile_prompt_is_text_and_runs_no_script(server, browser):
    from selenium.webdriver.common.by import By

    url, _, _ = server
    _run(browser, url, "tiny", f"{HOSTILE} {IMG}", method="kernelshap")
    state = _wait_done(browser)
    shown = browser.find_element(By.ID, "result-title").text if state == "done" else \
        browser.find_element(By.ID, "error").text
    assert state == "done" and "<script>" in shown, (state, shown)
    assert browser.execute_script("return window.__pwned === undefined")
    assert not any("PWNED" in entry["message"] for entry in browser.get_log("browser"))


def test_uploading_a_non_image_is_an_error_on_the_page(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _, _ = server
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    _run(browser, url, "edit", "make it red", source=text)
    assert _wait_done(browser) == "refused"
    assert "not an image" in browser.find_element(By.ID, "error").text


def test_an_audit_is_browsed_sorted_and_its_prompts_opened(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _, _ = server
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "a.audit-link"))
    browser.find_element(By.CSS_SELECTOR, "a.audit-link").click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#audit-words tbody tr"))
    table = browser.find_element(By.ID, "audit-words")
    assert table.get_attribute("data-sorted") == "mean:desc"
    browser.find_element(By.CSS_SELECTOR, "#audit-words th[data-key=word]").click()
    words = [r.find_elements(By.TAG_NAME, "td")[0].text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert words == sorted(words) and table.get_attribute("data-sorted") == "word:asc"
    browser.find_element(By.CSS_SELECTOR, "#audit-words th[data-key=count]").click()
    counts = [int(r.find_elements(By.TAG_NAME, "td")[3].text) for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert counts == sorted(counts, reverse=True)
    prompts = browser.find_elements(By.CSS_SELECTOR, "a.audit-prompt")
    assert [p.text for p in prompts] == ["a red circle", "a big blue square"]
    prompts[1].click()
    WebDriverWait(browser, 30).until(lambda d: "a big blue square" in d.find_element(By.ID, "result-title").text)
    rows = browser.find_elements(By.CSS_SELECTOR, "#words tbody tr")
    cells = [r.find_elements(By.TAG_NAME, "td")[0].text for r in rows]
    assert cells == ["a", "big", "blue", "square"]
    _screenshot(browser, "app-audit.png")


def test_two_browser_sessions_at_once_both_finish_with_the_command_lines_values(server, tmp_path):
    import json

    import numpy as np
    from click.testing import CliRunner

    from diffexplain.cli.main import cli

    url, _, model = server
    prompts = ["a small green triangle", "a blue circle on the left"]
    first, second = browser_or_skip(), browser_or_skip()
    try:
        for browser, prompt in zip((first, second), prompts):
            _run(browser, url, "tiny", prompt, method="kernelshap")
        states = [_wait_done(first), _wait_done(second)]
        assert states == ["done", "done"]
        shown = []
        for browser in (first, second):
            values = browser.execute_script(
                "return Array.from(document.querySelectorAll('#words tbody tr')).map("
                "r => Number(r.children[1].textContent))")
            shown.append(values)
    finally:
        first.quit()
        second.quit()
    for prompt, values in zip(prompts, shown):
        out = tmp_path / prompt.replace(" ", "_")
        result = CliRunner().invoke(cli, ["explain", prompt, "--model", model, "--seeds", "1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        expected = json.loads((out / "explanation.json").read_text())["values"]
        np.testing.assert_allclose(values, np.round(expected, 4), atol=1.5e-4)  # the page shows 4 decimals


def test_a_reference_insertion_shows_its_i2am_maps(server, browser, tmp_path):
    import numpy as np
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, _, _ = server
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[4:12, 4:12] = 255
    for name, array in (("source", np.full((16, 16, 3), 200, np.uint8)), ("mask", mask),
                        ("reference", np.full((16, 16, 3), 40, np.uint8))):
        Image.fromarray(array).save(tmp_path / f"{name}.png")
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#model option"))
    browser.execute_script("delete document.body.dataset.lastState")
    Select(browser.find_element(By.ID, "model")).select_by_visible_text("pbe")
    for name in ("source", "mask", "reference"):
        browser.find_element(By.ID, name).send_keys(str(tmp_path / f"{name}.png"))
    browser.find_element(By.ID, "start").click()
    assert _wait_done(browser) == "done"
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "return ['i2am-r2g', 'i2am-g2r'].every(i => { var x = document.getElementById(i); "
        "return x.complete && x.naturalWidth > 0; })"))
    assert "IMACS" in browser.find_element(By.ID, "i2am-scores").text
    assert "I2AM" in browser.find_element(By.ID, "result-title").text
