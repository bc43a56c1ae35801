"""The web app and the interactive report, measured in a real browser (headless Chromium).

Usage: python -m benchmarks.app [--parts load] [--repeats 5] [--screenshots docs/screenshots] [--name NAME]

- load: ``diffexplain serve`` on the shapes model explains a 12-word prompt (KernelSHAP, the
  defaults); then, ``--repeats`` times, a fresh page is opened, the run picked from the past runs
  and a word clicked, and the time from navigation to the word's heatmap drawn is read in the page
  (``performance.now()``); the same for the run's self-contained ``report.html`` (the CLI's, with
  attention views) until the explorer is drawn. The app's generations are counted in its cache
  against a command-line run of the same request in a fresh one. Screenshots of the main views
  go to ``--screenshots``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ._common import machine, write

PROMPT = "a big red circle on the left and a small blue square"  # 12 words


def _server(results: Path):
    from diffexplain.serve.app import create_app, serve_in_thread

    return serve_in_thread(create_app({"shapes": "shapes"}, results))


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1200,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _wait(driver, script: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not driver.execute_script(script):
        if time.monotonic() > deadline:
            raise TimeoutError(script)
        time.sleep(0.005)


def load_part(args) -> tuple[dict, str]:
    import json
    import urllib.request

    from click.testing import CliRunner

    from diffexplain.cache import GenerationCache
    from diffexplain.cli.main import cli

    work = Path(tempfile.mkdtemp(prefix="diffexplain-app-"))
    server, thread, url = _server(work / "results")
    try:
        body = f"model=shapes&prompt={PROMPT.replace(' ', '+')}".encode()
        with urllib.request.urlopen(urllib.request.Request(url + "api/runs", data=body, method="POST")) as response:
            run_id = json.loads(response.read())["id"]
        start = time.perf_counter()
        while True:
            with urllib.request.urlopen(f"{url}api/runs/{run_id}") as response:
                status = json.loads(response.read())
            if status["state"] not in ("queued", "running"):
                break
            time.sleep(0.2)
        run_s = time.perf_counter() - start
        if status["state"] != "done":
            raise RuntimeError(f"the app's run ended {status['state']}: {status.get('message')}")
        app_generations = len(GenerationCache(work / "results" / "cache.sqlite"))
        cli_out = work / "cli"
        result = CliRunner().invoke(cli, ["explain", PROMPT, "--model", "shapes", "--attention", "--yes",
                                          "--cache", str(work / "cli.sqlite"), "--out", str(cli_out)])
        if result.exit_code != 0:
            raise RuntimeError(result.output)
        cli_generations = len(GenerationCache(work / "cli.sqlite"))
        driver = _browser()
        app_ms, report_ms = [], []
        try:
            for _ in range(args.repeats):
                driver.get(url)
                _wait(driver, "return document.querySelectorAll('a.past-run').length > 0")
                driver.execute_script("document.querySelector('a.past-run').click()")
                _wait(driver, "return document.querySelectorAll('button.word').length === 12")
                driver.execute_script("document.querySelectorAll('button.word')[3].click()")
                _wait(driver, "var i = document.getElementById('heatmap'); var m = document.getElementById('image');"
                              "return i.complete && i.naturalWidth > 0 && m.complete && m.naturalWidth > 0")
                app_ms.append(driver.execute_script("return performance.now()"))
            if args.screenshots:
                Path(args.screenshots).mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(Path(args.screenshots) / "app.png"))
            for _ in range(args.repeats):
                driver.get((cli_out / "report.html").as_uri())
                _wait(driver, "var h = document.querySelector('.dx-heat'); return !!h && h.complete && "
                              "h.naturalWidth > 0 && !document.getElementById('dx-explorer').hidden")
                report_ms.append(driver.execute_script("return performance.now()"))
            if args.screenshots:
                driver.execute_script("document.querySelectorAll('#dx-explorer button')[3].click();"
                                      "document.getElementById('dx-explorer').scrollIntoView()")
                driver.save_screenshot(str(Path(args.screenshots) / "report.png"))
        finally:
            driver.quit()
    finally:
        server.should_exit = True
        thread.join(timeout=60)
    size = (cli_out / "report.html").stat().st_size
    payload = dict(prompt=PROMPT, words=12, repeats=args.repeats, app_page_ms=app_ms, report_page_ms=report_ms,
                   app_page_ms_median=statistics.median(app_ms), report_page_ms_median=statistics.median(report_ms),
                   report_bytes=size, app_run_s=round(run_s, 1), app_generations=app_generations,
                   cli_generations=cli_generations, machine=machine())
    table = "\n".join([
        "# The app and the report in a real browser (headless Chromium)", "",
        f"A 12-word prompt ({PROMPT!r}), KernelSHAP at its defaults on the shapes model; page times from "
        f"navigation to the clicked word's heatmap drawn (app) or to the explorer drawn (report), median of "
        f"{args.repeats}.", "",
        "| page | median ms | all runs (ms) |", "|---|---|---|",
        f"| app: open, pick the run, click a word | {payload['app_page_ms_median']:.0f} | "
        + ", ".join(f"{v:.0f}" for v in app_ms) + " |",
        f"| report.html ({size / 1e6:.1f} MB, self-contained) | {payload['report_page_ms_median']:.0f} | "
        + ", ".join(f"{v:.0f}" for v in report_ms) + " |", "",
        f"Generations: the app made {app_generations} images for the request, the command line "
        f"{cli_generations} for the same request in a fresh cache. The run took {run_s:.0f} s in the app.", ""])
    return payload, table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", default="load")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--screenshots", default=None, help="a folder for screenshots of the main views")
    parser.add_argument("--name", default=None)
    args = parser.parse_args(argv)
    if args.parts != "load":
        parser.error(f"--parts must be 'load', got {args.parts!r}")
    payload, table = load_part(args)
    write(f"{args.name or 'app'}_load", payload, table, current=args.name is None and args.repeats == 5)


if __name__ == "__main__":
    main()
