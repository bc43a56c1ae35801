"""``diffexplain serve``: a local web app to explore explanations (Starlette; the page and its
script ship in the package, nothing is loaded from elsewhere).

Routes (JSON unless said):
    GET  /                          the page (HTML)
    GET  /static/{name}             the page's script and style (only the shipped files)
    GET  /api/models                the models the app offers
    POST /api/runs                  start a run: form fields model, prompt, method, budget, seeds, seed,
                                    perturbation, and a source image for edit models (and a mask and a
                                    reference for reference-image models); 400 with the reason
    GET  /api/runs                  every run of the results folder, newest first
    GET  /api/runs/{id}             a run's status (done / total, time left, state, message)
    POST /api/runs/{id}/cancel      cancel a queued or running run
    GET  /api/runs/{id}/explanation the run's explanation.json
    GET  /api/runs/{id}/image.png   the prompt's image (PNG)
    GET  /api/runs/{id}/attention   the recorded maps: words, time groups, layers, views
    GET  /api/runs/{id}/heatmap/{k} word k's map over the image (PNG); query: time (group index),
                                    layer (index), view ("attention" or "output"); absent: averaged
    GET  /api/runs/{id}/coalitions  the coalitions the explanation evaluated: each one's text and word mask
    GET  /api/runs/{id}/coalition/{k}.png  coalition k's image (first seed), from the shared cache
    GET  /api/runs/{id}/i2am        a reference-image run's IMACS (Paint-by-Example: source, mask and
                                    reference uploaded; no words)
    GET  /api/runs/{id}/i2am/{m}.png  its map m: r2g (over the image), g2r (over the reference), guidance
    GET  /api/audits                the audit folders the app was given (``--audit DIR``)
    GET  /api/audits/{name}         an audit's summary (every word's share) and its prompts
    GET  /api/audits/{name}/prompts/{i}  prompt i's explanation.json

Run ids are 12 hexadecimal characters, audits are known by name and prompts by number, and files
are read only under fixed names (``RESULTS/ID/...``, ``AUDIT/prompts/NNNN/explanation.json``), so no
request reaches a path outside the results and audit folders.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .jobs import RUN_ID_LENGTH, Runner

STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
# the page runs only its own script and style; images are its own or data: URIs
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
_RUN_ID = re.compile(rf"[0-9a-f]{{{RUN_ID_LENGTH}}}")


def _static(name: str) -> bytes:
    return resources.files("diffexplain.serve").joinpath("static", name).read_bytes()


def create_app(models: dict[str, str], results: str | Path, *, audits: Mapping[str, str | Path] | None = None,
               ray: dict[str, Any] | None = None) -> Starlette:
    """The app over ``models`` (``{name: registered name or pipeline folder}``), writing runs to
    ``results``; ``audits`` (``{name: audit folder}``) can be browsed; ``ray``: ``RayExecutor``
    options to generate text-to-image runs on Ray actors (None: in the app's worker thread).

    Raises:
        ValueError: no model, or an audit folder without ``summary.json``.
    """
    if not models:
        raise ValueError("the app needs at least one model")
    audit_folders = {name: Path(at) for name, at in (audits or {}).items()}
    for name, at in audit_folders.items():
        if not (at / "summary.json").is_file():
            raise ValueError(f"audit {name!r}: {str(at)!r} holds no summary.json (run diffexplain audit first)")
    runner = Runner(models, Path(results), ray=ray)

    def folder(request: Request) -> Path | None:
        run_id = request.path_params["run_id"]
        return runner.results / run_id if _RUN_ID.fullmatch(run_id) else None

    def not_found(what: str) -> JSONResponse:
        return JSONResponse({"error": f"{what} not found"}, status_code=404)

    async def index(request: Request) -> Response:
        return Response(_static("index.html"), media_type="text/html", headers={"Content-Security-Policy": CSP})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return not_found("file")
        return Response(_static(name), media_type=STATIC[name])

    async def model_list(request: Request) -> JSONResponse:
        return JSONResponse({"models": sorted(models)})

    async def start(request: Request) -> JSONResponse:
        form = await request.form()
        fields: dict[str, Any] = {}
        images: dict[str, Any] = {}
        for key, value in form.multi_items():
            if key in ("source", "mask", "reference"):
                if not hasattr(value, "read"):
                    continue
                data = await value.read()
                if data:
                    images[key] = _image(data)
                    if images[key] is None:
                        return JSONResponse({"error": f"{key}: the uploaded file is not an image (PNG, JPEG...)"},
                                            status_code=400)
                continue
            fields[key] = value
        for key in ("budget", "seeds", "seed"):
            if fields.get(key) not in (None, ""):
                try:
                    fields[key] = int(str(fields[key]))
                except ValueError:
                    return JSONResponse({"error": f"{key} must be an integer, got {fields[key]!r}"}, status_code=400)
        try:
            run = runner.submit(fields, images.get("source"), images.get("mask"), images.get("reference"))
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(run.status(), status_code=202)

    async def runs(request: Request) -> JSONResponse:
        return JSONResponse({"runs": runner.past()})

    async def status(request: Request) -> JSONResponse:
        place = folder(request)
        found = None if place is None else runner.status(place.name)
        return JSONResponse(found) if found is not None else not_found("run")

    async def cancel(request: Request) -> JSONResponse:
        place = folder(request)
        if place is None or not runner.cancel(place.name):
            return not_found("running run")
        return JSONResponse({"cancelling": place.name})

    def json_file(path: Path | None, what: str) -> Response:
        """A written JSON file as browsers parse JSON (NaN, e.g. one seed's spread, becomes null)."""
        return JSONResponse(_strict(_read_json(str(path)))) if path is not None and path.is_file() \
            else not_found(what)

    async def explanation(request: Request) -> Response:
        place = folder(request)
        return json_file(None if place is None else place / "explanation.json", "explanation")

    async def image(request: Request) -> Response:
        place = folder(request)
        path = None if place is None else place / "image.png"
        return FileResponse(path) if path is not None and path.is_file() else not_found("image")

    def maps_folder(request: Request, view: str) -> Path | None:
        place = folder(request)
        if place is None or view not in ("attention", "output"):
            return None
        maps_at = place if view == "attention" else place / "output"
        return maps_at if (maps_at / "attention.json").is_file() and (place / "image.png").is_file() else None

    async def attention(request: Request) -> Response:
        place = maps_folder(request, "attention")
        if place is None:
            return not_found("attention maps")
        maps = _maps(str(place))
        views = ["attention"] + (["output"] if maps_folder(request, "output") is not None else [])
        return JSONResponse(dict(words=list(maps.words[0]), time_groups=maps.n_time_groups,
                                 layers=list(maps.layers), heads=[maps.n_heads(n) for n in maps.layers], views=views))

    async def heatmap(request: Request) -> Response:
        query = request.query_params
        view = query.get("view", "attention")
        place = maps_folder(request, view)
        if place is None:
            return not_found(f"{view} maps")
        choice: dict[str, int | None] = {}
        for key in ("time", "layer", "head"):
            value = query.get(key, "")
            if value not in ("", "all") and not value.isdigit():
                return JSONResponse({"error": f"{key} must be an index or 'all', got {value!r}"}, status_code=400)
            choice[key] = int(value) if value.isdigit() else None
        word = request.path_params["word"]
        png = _overlay_png(place, int(word), **choice) if word.isdigit() else None
        return Response(png, media_type="image/png") if png is not None else not_found("word, time group or layer")

    def saved_explanation(request: Request) -> dict | None:
        place = folder(request)
        path = None if place is None else place / "explanation.json"
        return _read_json(str(path)) if path is not None and path.is_file() else None

    async def coalitions(request: Request) -> Response:
        saved = saved_explanation(request)
        if saved is None or saved.get("coalitions") is None:
            return not_found("coalitions")
        texts = saved.get("coalition_texts") or [""] * len(saved["coalitions"])
        return JSONResponse({"coalitions": [dict(index=k, text=t, mask=[bool(x) for x in m])
                                            for k, (t, m) in enumerate(zip(texts, saved["coalitions"]))]})

    async def coalition_image(request: Request) -> Response:
        saved = saved_explanation(request)
        index = request.path_params["index"]
        keys = None if saved is None else saved.get("coalition_keys")
        if keys is None or not index.isdigit() or int(index) >= len(keys):
            return not_found("coalition")
        key = keys[int(index)][0]
        found = runner.cache.get_images([key])
        if key not in found:
            return not_found("coalition image")
        return Response(_png(found[key]), media_type="image/png")

    async def i2am(request: Request) -> Response:
        place = folder(request)
        return json_file(None if place is None else place / "i2am.json", "I2AM maps")

    async def i2am_map(request: Request) -> Response:
        place, name = folder(request), request.path_params["name"]
        path = None if place is None or name not in ("r2g", "g2r", "guidance") else place / f"i2am_{name}.png"
        return FileResponse(path) if path is not None and path.is_file() else not_found("I2AM map")

    def audit_folder(request: Request) -> Path | None:
        return audit_folders.get(request.path_params["name"])

    async def audit_list(request: Request) -> JSONResponse:
        rows = []
        for name, place in sorted(audit_folders.items()):
            summary = json.loads((place / "summary.json").read_text())
            rows.append(dict(name=name, n_prompts=summary.get("n_prompts"), method=summary.get("method")))
        return JSONResponse({"audits": rows})

    async def audit_summary(request: Request) -> Response:
        place = audit_folder(request)
        if place is None:
            return not_found("audit")
        prompts = []
        for path in sorted((place / "prompts").glob("[0-9][0-9][0-9][0-9]/explanation.json")):
            saved = json.loads(path.read_text())
            prompts.append(dict(index=int(path.parent.name), prompt=saved.get("metadata", {}).get("prompt", ""),
                                method=saved.get("method")))
        return JSONResponse(_strict(dict(summary=json.loads((place / "summary.json").read_text()), prompts=prompts)))

    async def audit_prompt(request: Request) -> Response:
        place = audit_folder(request)
        index = request.path_params["index"]
        if place is None or not index.isdigit() or len(index) > 6:
            return not_found("audit prompt")
        return json_file(place / "prompts" / f"{int(index):04d}" / "explanation.json", "audit prompt")

    routes = [
        Route("/", index), Route("/static/{name}", static), Route("/api/models", model_list),
        Route("/api/runs", runs, methods=["GET"]), Route("/api/runs", start, methods=["POST"]),
        Route("/api/runs/{run_id}", status), Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/api/runs/{run_id}/explanation", explanation), Route("/api/runs/{run_id}/image.png", image),
        Route("/api/runs/{run_id}/attention", attention), Route("/api/runs/{run_id}/heatmap/{word}", heatmap),
        Route("/api/runs/{run_id}/coalitions", coalitions),
        Route("/api/runs/{run_id}/coalition/{index}.png", coalition_image),
        Route("/api/runs/{run_id}/i2am", i2am), Route("/api/runs/{run_id}/i2am/{name}.png", i2am_map),
        Route("/api/audits", audit_list), Route("/api/audits/{name}", audit_summary),
        Route("/api/audits/{name}/prompts/{index}", audit_prompt),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        runner.close()  # cancel and wait for the worker: nothing half-written

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runner = runner
    return app


def serve_in_thread(app: Starlette, host: str = "127.0.0.1") -> tuple[Any, Any, str]:
    """Run ``app`` on a free port of ``host`` in a daemon thread (tests, benchmarks, notebooks).

    Returns:
        (server, thread, url); stop with ``server.should_exit = True`` then ``thread.join()``.
    """
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://{host}:{port}/"


def _png(image: Any) -> bytes:
    """A uint8 (H, W, 3) array as PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _strict(value: Any) -> Any:
    """``value`` with every non-finite float replaced by None: JSON as browsers parse it."""
    import math

    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strict(v) for v in value]
    return value


def _image(data: bytes) -> Any:
    """The uploaded bytes as a uint8 (H, W, 3) array, or None when they are not an image."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            return np.asarray(opened.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError):
        return None


@functools.lru_cache(maxsize=64)
def _read_json(path: str) -> Any:
    """A run's or an audit's JSON file, read once (they are written once, then only read; a run's
    coalition images ask for its explanation once each)."""
    return json.loads(Path(path).read_text())


@functools.lru_cache(maxsize=8)
def _maps(folder: str) -> Any:
    """A run's recorded maps, read once (run folders are written once, then only read)."""
    from ..attention.maps import AttentionMaps

    return AttentionMaps.load(folder)


def _overlay_png(place: Path, word: int, *, time: int | None = None, layer: int | None = None,
                 head: int | None = None) -> bytes | None:
    """Word ``word``'s map over the run's image as PNG bytes (one time group, one layer and one of its
    heads, or averaged), or None for no such word, group, layer or head (a head needs a layer)."""
    import numpy as np
    from PIL import Image

    from ..attention.maps import overlay

    maps = _maps(str(place))
    if word >= len(maps.words[0]) or (time is not None and time >= maps.n_time_groups) or \
            (layer is not None and layer >= len(maps.layers)):
        return None
    if head is not None and (layer is None or head >= maps.n_heads(layer)):
        return None
    image_at = place if (place / "image.png").is_file() else place.parent  # output maps live in a sub-folder
    image = np.asarray(Image.open(image_at / "image.png").convert("RGB"))
    heatmap = maps.word_heatmap(word, time_groups=None if time is None else [time],
                                layers=None if layer is None else [maps.layers[layer]],
                                heads=None if head is None else [head])
    return _png(np.asarray(Image.fromarray(overlay(image, heatmap)).resize((256, 256), Image.Resampling.NEAREST)))
