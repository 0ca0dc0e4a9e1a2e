"""``classify serve``: the FastAPI app (page + JSON API) and the uvicorn runner.

Routes: ``GET /`` the page; ``GET /static/...`` its script, style and audio worklet (all inside the
package, nothing from a CDN); ``GET /api/model``; ``GET /api/health``; ``POST /api/predict`` with the
bytes of an audio file as the body. Errors are JSON ``{"error": message, "status": code}``; a bad
request never stops the server.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.requests import ClientDisconnect

from ..errors import ClassifyError
from .engine import Engine, ServeConfig, UploadError

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; object-src 'none'; "
       "base-uri 'none'; frame-ancestors 'none'; form-action 'none'")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 as soon as it passes ``max_bytes`` (never buffered whole)."""
    too_big = UploadError(f"the upload is larger than {max_bytes / 2**20:g} MB, the most this server takes "
                          "(classify serve --max-mb); send a shorter or compressed file", 413)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_big
    chunks, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > max_bytes:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(engine: Engine, *, allowed_hosts: list[str] | None = None) -> FastAPI:
    """The app serving ``engine``. ``allowed_hosts``: Host header values accepted (None: any); a
    loopback server accepts only loopback names, which stops DNS-rebinding pages from using it."""
    app = FastAPI(title="classify serve", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.engine = engine

    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return _error(str(exc), exc.status)

    @app.exception_handler(ClientDisconnect)
    async def disconnected(request: Request, exc: ClientDisconnect):
        return _error("the upload stopped before its end (client disconnected); send it again", 400)

    @app.exception_handler(RequestValidationError)
    async def bad_query(request: Request, exc: RequestValidationError):
        what = "; ".join(f"{'.'.join(map(str, e.get('loc', ())[1:]))}: {e.get('msg')}" for e in exc.errors())
        return _error(f"bad request ({what}); see GET /api/model and the JSON API in docs/guide/serving.md", 400)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return _error(f"internal error ({type(exc).__name__}); the server keeps running, see its log", 500)

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/model")
    async def model():
        return engine.describe()

    @app.get("/api/health")
    async def health():
        return {"ok": True, "requests": engine.requests}

    @app.post("/api/predict")
    async def predict(request: Request, top_k: int = Query(None, ge=1, le=1000), timeline: bool = True,
                      spectrogram: bool = True):
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/"):
            raise UploadError("send the audio file's bytes as the request body (curl --data-binary @clip.wav "
                              "-H 'Content-Type: application/octet-stream'), not a multipart form", 415)
        data = await read_body(request, engine.config.max_bytes)
        return await run_in_threadpool(engine.predict_bytes, data, top_k=top_k, timeline=timeline,
                                       spectrogram=spectrogram)

    return app


# ------------------------------------------------------------------------------ running
def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), or a one-line error."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise ClassifyError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port "
                            "(0 takes a free one) or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(models: list[Path], config: ServeConfig) -> None:
    """Load the models, bind, print the URL and serve until Ctrl-C (uvicorn, one process)."""
    if not is_loopback(config.host):
        log.warning("--host %s: the page and API are reachable from other machines, without a password; "
                    "uploads are capped but anyone who can reach this port can use it", config.host)
    engine = Engine.load(models, config)
    run(engine, config, f"{len(engine.classes)} classes, {len(engine.scorers)} model(s), "
                        f"window {config.window:g} s every {config.hop:g} s")


def run(engine: Engine, config: ServeConfig, what: str, add_routes=None) -> None:
    """Bind, print the URL and serve ``engine`` until Ctrl-C; ``add_routes(app)`` adds more routes
    (teach mode's)."""
    import uvicorn

    sock = bind(config.host, config.port)
    port = sock.getsockname()[1]
    hosts = [*LOOPBACK_NAMES] if is_loopback(config.host) else None
    app = create_app(engine, allowed_hosts=hosts)
    if add_routes is not None:
        add_routes(app)
    shown = f"[{config.host}]" if ":" in config.host else config.host
    print(f"classify serve: http://{shown}:{port}/  ({what}; Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    try:
        server.run(sockets=[sock])
    finally:
        engine.close()
        sock.close()
