"""``diffexplain serve``: a local web app to explore explanations (Starlette; the page and its
script ship in the package, nothing is loaded from elsewhere).

Routes (JSON unless said):
    GET  /                          the page (HTML)
    GET  /static/{name}             the page's script and style (only the shipped files)
    GET  /api/models                the models the app offers
    POST /api/runs                  start a run: form fields model, prompt, method, budget, seeds, seed,
                                    perturbation, and a source image for edit models; 400 with the reason
    GET  /api/runs                  every run of the results folder, newest first
    GET  /api/runs/{id}             a run's status (done / total, time left, state, message)
    POST /api/runs/{id}/cancel      cancel a queued or running run
    GET  /api/runs/{id}/explanation the run's explanation.json
    GET  /api/runs/{id}/image.png   the prompt's image (PNG)
    GET  /api/runs/{id}/heatmap/{k} word k's attention over the image (PNG)

Run ids are 12 hexadecimal characters and files are read only from ``RESULTS/ID/`` under fixed
names, so no request reaches a path outside the results folder.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import AsyncIterator
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


def create_app(models: dict[str, str], results: str | Path) -> Starlette:
    """The app over ``models`` (``{name: registered name or pipeline folder}``), writing runs to ``results``."""
    if not models:
        raise ValueError("the app needs at least one model")
    runner = Runner(models, Path(results))

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
        source = None
        for key, value in form.multi_items():
            if key == "source":
                if not hasattr(value, "read"):
                    continue
                data = await value.read()
                if data:
                    source = _image(data)
                    if source is None:
                        return JSONResponse({"error": "source: the uploaded file is not an image (PNG, JPEG...)"},
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
            run = runner.submit(fields, source)
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

    async def explanation(request: Request) -> Response:
        place = folder(request)
        path = None if place is None else place / "explanation.json"
        if path is None or not path.is_file():
            return not_found("explanation")
        return JSONResponse(_strict(json.loads(path.read_text())))  # NaN (one seed: no spread) -> null

    async def image(request: Request) -> Response:
        place = folder(request)
        path = None if place is None else place / "image.png"
        return FileResponse(path) if path is not None and path.is_file() else not_found("image")

    async def heatmap(request: Request) -> Response:
        place = folder(request)
        if place is None or not (place / "attention.json").is_file() or not (place / "image.png").is_file():
            return not_found("attention maps")
        word = request.path_params["word"]
        png = _overlay_png(place, int(word)) if word.isdigit() else None
        return Response(png, media_type="image/png") if png is not None else not_found("word")

    routes = [
        Route("/", index), Route("/static/{name}", static), Route("/api/models", model_list),
        Route("/api/runs", runs, methods=["GET"]), Route("/api/runs", start, methods=["POST"]),
        Route("/api/runs/{run_id}", status), Route("/api/runs/{run_id}/cancel", cancel, methods=["POST"]),
        Route("/api/runs/{run_id}/explanation", explanation), Route("/api/runs/{run_id}/image.png", image),
        Route("/api/runs/{run_id}/heatmap/{word}", heatmap),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        runner.close()  # cancel and wait for the worker: nothing half-written

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runner = runner
    return app


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


def _overlay_png(place: Path, word: int) -> bytes | None:
    """Word ``word``'s attention over the run's image as PNG bytes, or None for no such word."""
    import numpy as np
    from PIL import Image

    from ..attention.maps import AttentionMaps, overlay

    maps = AttentionMaps.load(place)
    if word >= len(maps.words[0]):
        return None
    image = np.asarray(Image.open(place / "image.png").convert("RGB"))
    buffer = io.BytesIO()
    Image.fromarray(overlay(image, maps.word_heatmap(word))).resize((256, 256), Image.Resampling.NEAREST).save(
        buffer, format="PNG")
    return buffer.getvalue()
