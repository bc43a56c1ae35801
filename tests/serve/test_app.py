"""The web app's API (Starlette's test client): runs, progress, cancellation, refusals."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from diffexplain.serve.app import create_app  # noqa: E402


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from tests.helpers import tiny_image_pipeline, tiny_text2image

    root = tmp_path_factory.mktemp("serve")
    _, _, text = tiny_text2image(root / "text")
    edit = tiny_image_pipeline(root / "edit", "pix2pix")
    app = create_app({"tiny": str(text), "edit": str(edit.config["_name_or_path"])}, root / "results")
    with TestClient(app) as test_client:
        yield test_client


def _wait(client, run_id, seconds=120):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = client.get(f"/api/runs/{run_id}").json()
        if status["state"] not in ("queued", "running"):
            return status
        time.sleep(0.1)
    raise AssertionError("the run did not finish")


def test_a_run_writes_what_the_cli_writes_and_serves_its_views(client):
    start = client.post("/api/runs", data={"model": "tiny", "prompt": "a big red circle", "method": "shapley",
                                           "seeds": "1"})
    assert start.status_code == 202, start.text
    status = _wait(client, start.json()["id"])
    assert status["state"] == "done" and status["total"] > 0
    explanation = client.get(f"/api/runs/{status['id']}/explanation").json()
    assert explanation["features"] == ["a", "big", "red", "circle"] and explanation["n_generations"] == 16
    from diffexplain.cache import GenerationCache

    # the app made exactly the generations the explanation asked for (the CLI's), nothing beside them
    assert len(GenerationCache(client.app.state.runner.results / "cache.sqlite")) == 16
    image = client.get(f"/api/runs/{status['id']}/image.png")
    assert image.headers["content-type"] == "image/png"
    heat = [client.get(f"/api/runs/{status['id']}/heatmap/{k}").content for k in (2, 3)]
    assert heat[0] != heat[1] and Image.open(io.BytesIO(heat[0])).size == (256, 256)
    coalitions = client.get(f"/api/runs/{status['id']}/coalitions").json()["coalitions"]
    assert len(coalitions) == 16 and {c["text"] for c in coalitions} >= {"", "a big red circle", "red circle"}
    full = next(c for c in coalitions if c["text"] == "a big red circle")
    assert full["mask"] == [True] * 4
    picture = client.get(f"/api/runs/{status['id']}/coalition/{full['index']}.png")
    assert picture.headers["content-type"] == "image/png" and Image.open(io.BytesIO(picture.content)).size == (16, 16)
    assert client.get(f"/api/runs/{status['id']}/coalition/16.png").status_code == 404
    assert client.get(f"/api/runs/{status['id']}/coalition/x.png").status_code == 404
    recorded = client.get(f"/api/runs/{status['id']}/attention").json()
    assert recorded["words"] == ["a", "big", "red", "circle"] and recorded["views"] == ["attention"]  # a UNet
    groups, layers = recorded["time_groups"], len(recorded["layers"])
    assert groups >= 2 and layers >= 2
    base = f"/api/runs/{status['id']}/heatmap/2"
    one_time, one_layer = client.get(base + "?time=0").content, client.get(base + "?layer=1").content
    assert len({heat[0], one_time, one_layer, client.get(base + "?time=1&layer=0").content}) == 4
    assert client.get(base + "?view=attention&time=all&layer=all").content == heat[0]
    assert client.get(base + f"?time={groups}").status_code == 404  # no such group
    assert client.get(base + f"?layer={layers}").status_code == 404
    assert client.get(base + "?time=-1").status_code == 400 and client.get(base + "?layer=x").status_code == 400
    assert client.get(base + "?view=output").status_code == 404  # no joint blocks: no output-space maps
    heads = recorded["heads"]
    assert len(heads) == layers and min(heads) >= 1
    one_head = client.get(base + "?layer=0&head=0").content
    assert one_head != one_layer or heads[0] == 1
    assert client.get(base + "?head=0").status_code == 404  # a head needs its layer
    assert client.get(base + f"?layer=0&head={heads[0]}").status_code == 404
    assert any(run["id"] == status["id"] for run in client.get("/api/runs").json()["runs"])
    again = _wait(client, client.post("/api/runs", data={"model": "tiny", "prompt": "a big red circle",
                                                           "method": "shapley", "seeds": "1"}).json()["id"])
    assert again["state"] == "done"  # the shared cache: nothing new generated
    assert client.get(f"/api/runs/{again['id']}/explanation").json()["n_cached"] == 16


@pytest.mark.parametrize("data,match", [
    ({"model": "nope", "prompt": "a red circle"}, "model must be one of"),
    ({"model": "tiny", "prompt": ""}, "prompt must be a non-empty text"),
    ({"model": "tiny", "prompt": "a red circle", "method": "magic"}, "method must be one of"),
    ({"model": "tiny", "prompt": "a red circle", "seeds": "two"}, "seeds must be an integer"),
    ({"model": "tiny", "prompt": "a red circle", "path": "/etc"}, "unknown request fields"),
    ({"model": "edit", "prompt": "make it red"}, "edits a source image: upload one"),
])
def test_bad_requests_are_refused_with_the_reason(client, data, match):
    response = client.post("/api/runs", data=data)
    assert response.status_code == 400 and match in response.json()["error"]


def test_an_upload_that_is_not_an_image_is_refused_and_an_image_is_taken(client):
    bad = client.post("/api/runs", data={"model": "edit", "prompt": "make it red"},
                      files={"source": ("x.png", b"not an image", "image/png")})
    assert bad.status_code == 400 and "not an image" in bad.json()["error"]
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(buffer, format="PNG")
    good = client.post("/api/runs", data={"model": "edit", "prompt": "make it red", "method": "shapley",
                                          "seeds": "1"}, files={"source": ("s.png", buffer.getvalue(), "image/png")})
    assert good.status_code == 202 and _wait(client, good.json()["id"])["state"] == "done"


@pytest.mark.parametrize("path", ["/api/runs/..%2f..%2fetc%2fpasswd", "/api/runs/../../etc/passwd/explanation",
                                  "/static/..%2fapp.py", "/static/index.html", "/api/runs/0123456789ab/image.png",
                                  "/api/runs/%2e%2e/explanation"])
def test_no_path_outside_the_results_folder_is_served(client, path):
    assert client.get(path).status_code == 404


def test_a_run_can_be_cancelled_and_says_so(client):
    start = client.post("/api/runs", data={"model": "tiny", "prompt": "a small blue square on the left",
                                           "method": "shapley", "seeds": "3"})
    run_id = start.json()["id"]
    client.post(f"/api/runs/{run_id}/cancel")
    status = _wait(client, run_id)
    assert status["state"] == "cancelled" and "cancelled" in status["message"]


def test_the_page_ships_its_own_script_under_a_strict_policy(client):
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert 'src="/static/app.js"' in page.text and "http" not in page.text.replace("http-equiv", "")
    assert "textContent" in client.get("/static/app.js").text


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """An app with an audit folder made by the CLI."""
    from click.testing import CliRunner

    from diffexplain.cli.main import cli
    from tests.helpers import tiny_text2image

    root = tmp_path_factory.mktemp("audited")
    _, _, text = tiny_text2image(root / "text")
    prompts = root / "prompts.txt"
    prompts.write_text("a big red circle\na blue square\n")
    run = CliRunner().invoke(cli, ["audit", str(prompts), "--model", str(text), "--method", "shapley", "--seeds", "1",
                                   "--embedder", "pixel", "--steps", "2", "--out", str(root / "audit"), "--yes"])
    assert run.exit_code == 0, run.output
    app = create_app({"tiny": str(text)}, root / "results", audits={"colours": root / "audit"})
    with TestClient(app) as test_client:
        yield test_client


def test_an_audit_is_browsed_word_table_and_prompt_pages(audited):
    assert audited.get("/api/audits").json() == {"audits": [{"name": "colours", "n_prompts": 2, "method": "shapley"}]}
    body = audited.get("/api/audits/colours").json()
    assert [p["prompt"] for p in body["prompts"]] == ["a big red circle", "a blue square"]
    assert {w["word"] for w in body["summary"]["words"]} >= {"red", "circle", "blue", "square"}
    second = audited.get("/api/audits/colours/prompts/1").json()
    assert second["features"] == ["a", "blue", "square"] and second["metadata"]["prompt"] == "a blue square"


@pytest.mark.parametrize("path", ["/api/audits/nope", "/api/audits/colours/prompts/2",
                                  "/api/audits/colours/prompts/../../../../etc",
                                  "/api/audits/..%2f..%2fetc/prompts/0", "/api/audits/colours/prompts/%2e%2e%2f0",
                                  "/api/audits/colours/prompts/0000001"])
def test_no_audit_path_outside_its_folder_is_served(audited, path):
    assert audited.get(path).status_code == 404


def test_an_audit_folder_without_a_summary_is_refused(tmp_path):
    with pytest.raises(ValueError, match="holds no summary.json"):
        create_app({"tiny": "shapes"}, tmp_path / "results", audits={"x": tmp_path})


def test_a_reference_image_model_gives_i2am_maps_in_the_app(tmp_path):
    from tests.helpers import tiny_paint_by_example

    pipe = tiny_paint_by_example(tmp_path)
    app = create_app({"pbe": str(pipe.config["_name_or_path"])}, tmp_path / "results")

    def png(array: np.ndarray) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return buffer.getvalue()

    source = png(np.full((16, 16, 3), 200, np.uint8))
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[4:12, 4:12] = 255
    files = {"source": ("s.png", source, "image/png"), "mask": ("m.png", png(mask), "image/png"),
             "reference": ("r.png", png(np.full((16, 16, 3), 30, np.uint8)), "image/png")}
    with TestClient(app) as client:
        missing = client.post("/api/runs", data={"model": "pbe"}, files={"source": files["source"]})
        assert missing.status_code == 400 and "upload mask, reference" in missing.json()["error"]
        start = client.post("/api/runs", data={"model": "pbe", "seeds": "1"}, files=files)
        assert start.status_code == 202, start.text
        status = _wait(client, start.json()["id"])
        assert status["state"] == "done", status
        found = client.get(f"/api/runs/{status['id']}/i2am").json()
        assert isinstance(found["imacs_r2g"], float) and set(found["maps"]) >= {"r2g", "g2r"}
        for name in found["maps"]:
            picture = client.get(f"/api/runs/{status['id']}/i2am/{name}.png")
            assert Image.open(io.BytesIO(picture.content)).size == (256, 256)
        assert client.get(f"/api/runs/{status['id']}/i2am/..%2fimage.png").status_code == 404
        assert client.get(f"/api/runs/{status['id']}/explanation").status_code == 404  # no words to explain
