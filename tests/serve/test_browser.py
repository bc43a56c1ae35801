"""The web app in a real browser (headless Chromium driven by Selenium, as the report tests):
run a prompt, watch it finish, click words, open a past run, upload a non-image, and a hostile
prompt shown as text with no script run."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from tests.reliability.test_injection import HOSTILE, IMG, browser_or_skip  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from diffexplain.serve.app import create_app
    from tests.families import tiny_sd
    from tests.helpers import tiny_image_pipeline

    root = tmp_path_factory.mktemp("app")
    text = tiny_sd(root / "text").config["_name_or_path"]  # a real CLIP tokenizer: any text is a prompt
    edit = tiny_image_pipeline(root / "edit", "pix2pix")
    app = create_app({"tiny": str(text), "edit": str(edit.config["_name_or_path"])}, root / "results")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    while not instance.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", root
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


def _wait_done(browser):
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 180).until(lambda d: d.execute_script("return document.body.dataset.lastState"))
    return browser.execute_script("return document.body.dataset.lastState")


def test_a_prompt_runs_to_done_and_each_word_shows_its_own_map(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, _ = server
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
    assert sources[0].endswith("/heatmap/2") and sources[1].endswith("/heatmap/3")
    assert "red" not in browser.find_element(By.ID, "heatmap-caption").text  # now the circle's
    links = browser.find_elements(By.CSS_SELECTOR, "a.past-run")
    assert links and "a big red circle" in links[0].text
    browser.get(url)
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "a.past-run"))
    browser.find_elements(By.CSS_SELECTOR, "a.past-run")[0].click()
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.word"))
    assert "a big red circle" in browser.find_element(By.ID, "result-title").text


def test_a_hostile_prompt_is_text_and_runs_no_script(server, browser):
    from selenium.webdriver.common.by import By

    url, _ = server
    _run(browser, url, "tiny", f"{HOSTILE} {IMG}", method="kernelshap")
    state = _wait_done(browser)
    shown = browser.find_element(By.ID, "result-title").text if state == "done" else \
        browser.find_element(By.ID, "error").text
    assert state == "done" and "<script>" in shown, (state, shown)
    assert browser.execute_script("return window.__pwned === undefined")
    assert not any("PWNED" in entry["message"] for entry in browser.get_log("browser"))


def test_uploading_a_non_image_is_an_error_on_the_page(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = server
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    _run(browser, url, "edit", "make it red", source=text)
    assert _wait_done(browser) == "refused"
    assert "not an image" in browser.find_element(By.ID, "error").text
