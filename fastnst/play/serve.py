"""``fastnst serve``: the browser page (``fastnst.web``) and the models, over local HTTP or as a
static folder. Standard library only (http.server): no torch, no third-party server.

The site is one table, URL path -> file or bytes, that the server answers from and the export
writes out: the page, onnxruntime-web (vendored WebAssembly build; the WebGPU build from an npm
install when given), each model under ``models/``, and ``site.json`` (the models and the ONNX
contract's names, so the page never re-types them).
"""

from __future__ import annotations

import errno
import importlib.resources
import json
import logging
import mimetypes
import os
import shutil
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from fastnst import UserError
from fastnst.play import contract
from fastnst.play.model import StyleModel
from fastnst.play.shipped import models_or_shipped

log = logging.getLogger(__name__)

SITE_JSON = "site.json"
# onnxruntime-web's WebGPU build: too large to vendor, so served from an npm install when given.
WEBGPU_FILES = ("ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm")
# WebAssembly threads need SharedArrayBuffer, which browsers give only to cross-origin isolated pages.
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin"}
_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
          ".onnx": "application/octet-stream", ".json": "application/json", ".css": "text/css",
          ".html": "text/html; charset=utf-8"}


def web_dir() -> Path:
    """The page's files (the ``fastnst.web`` package data, with ``vendor/`` onnxruntime-web)."""
    return Path(str(importlib.resources.files("fastnst.web")))


def _webgpu_dist(folder: str | os.PathLike) -> Path:
    """An onnxruntime-web npm install (``node_modules/onnxruntime-web``, the package or its ``dist``)
    -> the folder that holds the WebGPU build."""
    for cand in (Path(folder), Path(folder) / "dist", Path(folder) / "node_modules" / "onnxruntime-web" / "dist"):
        if all((cand / f).is_file() for f in WEBGPU_FILES):
            return cand
    raise UserError(f"onnxruntime-web folder {folder}: no {WEBGPU_FILES[0]} there "
                    "(give the folder of `npm install onnxruntime-web`)")


def site_table(model_paths: list[str | os.PathLike], onnxruntime_web: str | os.PathLike | None = None,
               most_styles_first: bool = False) -> dict[str, Path | bytes]:
    """URL path (no leading slash) -> a file or the bytes to send: the page, onnxruntime-web, the
    models (each checked against the contract first; ``most_styles_first``: the page's first model
    is the one with the most styles, as in ``webcam``) and ``site.json``."""
    web = web_dir()
    table: dict[str, Path | bytes] = {"": web / "index.html"}
    for f in sorted(web.rglob("*")):
        if f.is_file() and f.suffix not in (".py", ".pyc"):
            table[f.relative_to(web).as_posix()] = f
    if onnxruntime_web is not None:
        dist = _webgpu_dist(onnxruntime_web)
        table.update({f"vendor/{f}": dist / f for f in WEBGPU_FILES})
    models = []
    loaded = [StyleModel(m, "cpu", threads=1) for m in model_paths]  # a broken file fails here, not in the browser
    if most_styles_first:
        loaded.sort(key=lambda m: -len(m.style_names))
    for model in loaded:
        url = f"models/{model.path.name}"
        n = 2
        while url in table:  # two files with one name: keep both
            url = f"models/{model.path.stem}-{n}{model.path.suffix}"
            n += 1
        table[url] = model.path
        models.append({"name": model.path.stem, "url": url, "styles": model.style_names})
    version = (web / "vendor" / "VERSION").read_text().split("\n", 1)[0] if (web / "vendor" / "VERSION").is_file() else ""
    site = {"models": models, "onnxruntime": version, "webgpu": onnxruntime_web is not None,
            "contract": {"io": contract.IO_CONTRACT, "input": contract.INPUT_NAME, "style": contract.STYLE_INPUT_NAME,
                         "output": contract.OUTPUT_NAME, "name": contract.META_NAME, "styles": contract.META_STYLES,
                         "io_key": contract.META_IO}}
    table[SITE_JSON] = json.dumps(site, indent=1).encode()
    return table


class _Handler(BaseHTTPRequestHandler):
    table: dict[str, Path | bytes] = {}

    def _send(self, body: bool) -> None:
        path = self.path.split("?", 1)[0].split("#", 1)[0].lstrip("/")
        item = self.table.get(path)
        if item is None:
            self.send_error(404, f"not found: /{path}")
            return
        data = item if isinstance(item, bytes) else item.read_bytes()
        suffix = Path(path or "index.html").suffix
        self.send_response(200)
        self.send_header("Content-Type", _TYPES.get(suffix) or mimetypes.guess_type(path)[0] or "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        for k, v in ISOLATION_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._send(True)

    def do_HEAD(self):  # noqa: N802
        self._send(False)

    def log_message(self, format, *args):  # one line per request only with -v
        log.debug("%s - %s", self.address_string(), format % args)


def make_server(table: dict[str, Path | bytes], host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    """A threaded HTTP server for ``table`` (``site_table``), bound and ready for ``serve_forever``."""
    if not 0 <= port <= 65535:
        raise UserError(f"port must be between 0 and 65535, got {port}")
    handler = type("SiteHandler", (_Handler,), {"table": table})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserError(f"port {port} is in use (port 0 picks a free one)") from None
        raise UserError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
    server.daemon_threads = True
    return server


def server_url(server: ThreadingHTTPServer) -> str:
    host, port = server.server_address[:2]
    if host in ("0.0.0.0", "::", ""):
        host = "localhost"
    return f"http://{host}:{port}/"


def export_site(table: dict[str, Path | bytes], dest: str | os.PathLike) -> Path:
    """Write ``table`` as a static folder ``dest`` for any static host. Atomic: built in a temp folder
    next to ``dest`` and renamed onto it; an existing ``dest`` is replaced only if it is empty or an
    earlier export (it has ``site.json``)."""
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and not (dest / SITE_JSON).is_file())):
        raise UserError(f"export folder {dest} exists and is not an earlier export; give a new or empty folder")
    parent = dest.parent if str(dest.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"export folder {dest}: folder {parent} does not exist")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=parent))
    try:
        for url, item in table.items():
            if not url:
                continue  # "/" is index.html, which is in the table under its own name
            out = tmp / url
            out.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(item, bytes):
                out.write_bytes(item)
            else:
                shutil.copyfile(item, out)
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a static host's user must read it
        if dest.exists():
            old = parent / f".{dest.name}.old.tmp"
            shutil.rmtree(old, ignore_errors=True)
            os.rename(dest, old)
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def serve_models(names: list[str | os.PathLike] | None, host: str = "127.0.0.1", port: int = 8000,
                 export: str | os.PathLike | None = None, onnxruntime_web: str | os.PathLike | None = None,
                 ready=log.info) -> Path | None:
    """`fastnst serve`: the page with ``names`` (default: every shipped model, the one with the most styles
    first), served until Ctrl-C (``ready(line)`` says where), or with ``export`` written to that folder
    (returned)."""
    table = site_table(models_or_shipped(names), onnxruntime_web, most_styles_first=not names)
    if export:
        return export_site(table, export)
    server = make_server(table, host, port)
    try:
        ready(f"fastnst page: {server_url(server)} (Ctrl-C stops)")
        server.serve_forever()
    finally:
        server.server_close()
    return None
