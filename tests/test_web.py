"""The browser page (``fastnst serve``) in headless Chromium, with a fake camera: it plays, styles and
blends differ, its output matches the Python player's, bad input gives a message and no uncaught
error, and a static export plays on one thread. One browser for the module; Chromium from the
system (Debian's ``chromium``), driven by Playwright."""

from __future__ import annotations

import base64
import functools
import http.server
import json
import signal
import subprocess
import sys
import textwrap
import threading
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from web_browser import CHROMIUM, chromium_args, write_y4m

from fastnst import cli
from fastnst.play.model import StyleModel
from fastnst.play.pipeline import FramePipeline
from fastnst.play.serve import make_server, server_url, site_table

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install '.[test]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")

WIDTH = 320  # the page's processing width in these tests: fast on 2 cores
TIMEOUT = 90_000  # ms: the first page compiles onnxruntime-web's WebAssembly


def camera_frame() -> np.ndarray:
    """The fake camera's picture, 640x480 BGR: a colour gradient with a white disc and a dark bar."""
    xs, ys = np.meshgrid(np.linspace(0, 255, 640), np.linspace(0, 255, 480))
    frame = np.dstack([xs, ys, 255 - xs]).astype(np.uint8)
    cv2.circle(frame, (400, 220), 90, (255, 255, 255), -1)
    cv2.rectangle(frame, (60, 300), (260, 360), (30, 30, 90), -1)
    return frame


def photo(size=(WIDTH, 240)) -> np.ndarray:
    """The fixed frame for parity: the camera picture at the processing size, with noise for texture."""
    rng = np.random.default_rng(0)
    img = cv2.resize(camera_frame(), size, interpolation=cv2.INTER_AREA).astype(np.int16)
    return np.clip(img + rng.integers(-20, 21, img.shape), 0, 255).astype(np.uint8)


class Page:
    """A Playwright page of the site, with its console errors, uncaught errors and requests recorded."""

    def __init__(self, browser, url: str):
        self.url = url
        self.page = browser.new_page(accept_downloads=True)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url)
        self.page.wait_for_function("window.fastnst && window.fastnst.ready", timeout=TIMEOUT)

    def wait_frame(self) -> None:
        """Until the canvas shows the current settings."""
        self.page.wait_for_function("window.fastnst.shown === window.fastnst.changes && window.fastnst.frames > 0",
                                    timeout=TIMEOUT)

    def canvas(self) -> np.ndarray:
        """The output canvas as (h, w, 3) uint8 BGR."""
        data = self.page.evaluate("document.getElementById('output').toDataURL('image/png')")
        return cv2.imdecode(np.frombuffer(base64.b64decode(data.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)

    def set(self, selector: str, value) -> None:
        """Set a control as a user would (select, range or checkbox) and wait for the frame that shows it."""
        self.page.evaluate("([sel, v]) => { const el = document.querySelector(sel);"
                           " if (el.type === 'checkbox') el.checked = v; else el.value = String(v);"
                           " el.dispatchEvent(new Event(el.tagName === 'SELECT' || el.type === 'checkbox' ? 'change' : 'input',"
                           " {bubbles: true})); }", [selector, value])
        self.wait_frame()

    def message(self) -> str:
        return self.page.text_content("#message") or ""

    def uncaught(self) -> list[str]:
        """Console errors and uncaught exceptions, less the browser's own note on a failed request."""
        return [e for e in self.errors if "Failed to load resource" not in e]


@pytest.fixture(scope="module")
def camera(tmp_path_factory) -> Path:
    return write_y4m(tmp_path_factory.mktemp("camera") / "camera.y4m", [camera_frame()] * 3)


@pytest.fixture(scope="module")
def site():
    """``fastnst serve``'s server for the shipped models, on a free port, in a thread."""
    server = make_server(site_table(["twelve_styles", "shipwreck"]), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server_url(server)
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def playwright():
    with sync_api.sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright, camera):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera))
    yield b
    b.close()


@pytest.fixture(scope="module")
def live(browser, site) -> Page:
    """The page on the fake camera at the test width."""
    page = Page(browser, f"{site}?width={WIDTH}")
    page.wait_frame()
    return page


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.slow
def test_page_plays_the_camera_stylized(live, site):
    out = live.canvas()
    cam = cv2.resize(camera_frame(), (WIDTH, 240), interpolation=cv2.INTER_AREA)
    assert out.shape == cam.shape
    assert mad(out, cam) > 15  # stylized, not the camera frame
    status = live.page.text_content("#status")
    assert "WebAssembly" in status and "single-threaded" not in status, status
    styles = live.page.eval_on_selector_all("#style option", "els => els.map(e => e.textContent)")
    assert len(styles) == 13 and "scream" in styles and "shipwreck" in styles  # every style of every model
    assert all(u.startswith(site) or u.startswith(("blob:", "data:")) for u in live.requests), live.requests
    assert not live.uncaught()


@pytest.mark.slow
def test_style_switch_and_blend(live):
    live.set("#style", "0/0")
    a = live.canvas()
    live.set("#style", "0/1")
    b = live.canvas()
    live.set("#blend-style", "0")  # blend style 1 with style 0 ...
    live.set("#blend", 50)  # ... 50/50
    ab = live.canvas()
    live.set("#blend-style", "")
    assert mad(a, b) > 5, "two styles give the same picture"
    assert mad(ab, a) > 2 and mad(ab, b) > 2, "the 50/50 blend equals one of its ends"
    assert not live.uncaught()


@pytest.fixture(scope="module")
def parity(browser, site, tmp_path_factory):
    """The page on a fixed image (the file picker) at its own size, and the Python player on it."""
    path = tmp_path_factory.mktemp("parity") / "photo.png"
    cv2.imwrite(str(path), photo())
    page = Page(browser, f"{site}?width={WIDTH}")
    page.page.set_input_files("#source-file", str(path))
    page.wait_frame()
    yield page
    page.page.close()


@pytest.mark.slow
@pytest.mark.parametrize("style, blend, strength, keep", [
    ("0/0", None, 100, False), ("0/5", None, 100, False), ("0/11", None, 100, False),  # three styles
    ("0/2", ("7", 50), 100, False),  # a 50/50 blend
    ("0/3", None, 50, False), ("0/3", None, 100, True),  # strength 0.5, keep colours
])
def test_parity_with_the_python_player(parity, style, blend, strength, keep):
    model = StyleModel("twelve_styles", "cpu", threads=1)
    si = int(style.split("/")[1])
    weights = np.eye(len(model.style_names), dtype=np.float32)[si]
    parity.set("#blend-style", "")
    parity.set("#style", style)
    if blend:
        parity.set("#blend-style", blend[0])
        parity.set("#blend", blend[1])
        weights = weights * (1 - blend[1] / 100) + np.eye(len(model.style_names), dtype=np.float32)[int(blend[0])] * blend[1] / 100
    parity.set("#strength", strength)
    parity.set("#keep-colors", keep)
    got = parity.canvas()
    model.set_style(weights)
    want = FramePipeline().stylize(model, photo(), strength=strength / 100, preserve_color=keep)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    print(f"{style} blend={blend} strength={strength} keep={keep}: mean {diff.mean():.3f}, p99 {np.percentile(diff, 99):.0f}")
    assert diff.mean() <= 1.0 and np.percentile(diff, 99) <= 4
    assert not parity.uncaught()


@pytest.mark.slow
def test_snapshot_and_record(live):
    with live.page.expect_download() as snap:
        live.page.click("#snapshot")
    png = cv2.imdecode(np.frombuffer(Path(snap.value.path()).read_bytes(), np.uint8), cv2.IMREAD_COLOR)
    assert snap.value.suggested_filename.endswith(".png") and png.shape == (240, WIDTH, 3)
    live.page.click("#record")
    still_playing(live)
    with live.page.expect_download() as rec:
        live.page.click("#record")
    data = Path(rec.value.path()).read_bytes()
    assert rec.value.suggested_filename.endswith(".webm") and data[:4] == b"\x1a\x45\xdf\xa3"  # EBML: WebM
    assert not live.uncaught()


def drop_file(page: Page, name: str, data: bytes, mime: str = "") -> None:
    """Drop a file on the page as a user's drag and drop does."""
    page.page.evaluate("""([name, b64, mime]) => {
        const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], name, {type: mime}));
        document.getElementById('stage').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true}));
    }""", [name, base64.b64encode(data).decode(), mime])


def still_playing(page: Page) -> None:
    frames = page.page.evaluate("window.fastnst.frames")
    page.page.wait_for_function(f"window.fastnst.frames > {frames + 1}", timeout=TIMEOUT)


@pytest.mark.slow
def test_dropped_text_file(live):
    before = live.page.input_value("#style")
    drop_file(live, "notes.txt", b"these are my notes, not a model\n", "text/plain")
    live.page.wait_for_function("document.getElementById('message').textContent.includes('notes')")
    assert "not an ONNX model" in live.message() and "keeps playing" in live.message(), live.message()
    assert live.page.input_value("#style") == before
    still_playing(live)
    assert not live.uncaught()


def other_contract_onnx() -> bytes:
    """A valid ONNX model with another contract: float RGB NCHW in and out."""
    pytest.importorskip("onnx", reason="building a test model needs onnx (the train extra)")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "H", "W"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, "H", "W"])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "other", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.slow
def test_model_with_another_contract(live, tmp_path):
    path = tmp_path / "other.onnx"
    path.write_bytes(other_contract_onnx())
    live.page.set_input_files("#model-file", str(path))
    live.page.wait_for_function("document.getElementById('message').textContent.includes('other')")
    assert "is not a fastnst model" in live.message() and "uint8" in live.message(), live.message()
    assert live.page.eval_on_selector_all("#style option", "els => els.length") == 13
    still_playing(live)
    assert not live.uncaught()


@pytest.mark.slow
def test_own_model_by_drop(live):
    drop_file(live, "mine.onnx", StyleModel("shipwreck", "cpu", threads=1).path.read_bytes())
    live.page.wait_for_function("document.getElementById('message').textContent.includes('added mine')")
    assert live.page.input_value("#style") == "2/0"  # the new model plays
    live.wait_frame()
    assert not live.uncaught()


@pytest.mark.slow
def test_missing_model_url(browser, site):
    page = Page(browser, f"{site}?model=models/missing.onnx")
    try:
        page.page.wait_for_function("document.getElementById('message').textContent.length > 0", timeout=TIMEOUT)
        assert "missing.onnx" in page.message() and "404" in page.message(), page.message()
        assert page.page.is_visible("#controls") and page.page.text_content("#status").startswith("WebAssembly")
        assert not page.uncaught(), page.errors
    finally:
        page.page.close()


@pytest.mark.slow
def test_session_options_from_the_query(browser, site):
    page = Page(browser, f"{site}?model=models/shipwreck.onnx&session=" + '{"executionMode":"bogus"}')
    try:
        page.page.wait_for_function("document.getElementById('message').textContent.length > 0", timeout=TIMEOUT)
        assert "unsupported execution mode: bogus" in page.message(), page.message()
    finally:
        page.page.close()


@pytest.mark.slow
def test_camera_refused_offers_a_file(playwright, camera, site, tmp_path):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=chromium_args(camera, allow_camera=False))
    try:
        page = Page(b, f"{site}?width={WIDTH}")
        page.page.wait_for_function("document.getElementById('message').textContent.includes('No camera')",
                                    timeout=TIMEOUT)
        assert "refused" in page.message(), page.message()
        assert "wanted" in page.page.get_attribute("label.file", "class")
        cv2.imwrite(str(tmp_path / "photo.png"), photo())
        page.page.set_input_files("#source-file", str(tmp_path / "photo.png"))
        page.wait_frame()
        assert mad(page.canvas(), photo()) > 15
        assert not page.uncaught()
    finally:
        b.close()


@pytest.mark.slow
def test_static_export_plays_single_threaded(browser, tmp_path, capsys):
    site = tmp_path / "site"
    assert cli.main(["serve", "--export", str(site), "-m", "twelve_styles"]) == 0
    assert str(site) in capsys.readouterr().out
    assert cli.main(["serve", "--export", str(site), "-m", "shipwreck"]) == 0  # over an earlier export
    assert json.loads((site / "site.json").read_text())["models"][0]["name"] == "shipwreck"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    # python -m http.server: no cross-origin isolation headers
    class Quiet(http.server.SimpleHTTPRequestHandler):  # python -m http.server's handler, without its log
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = Page(browser, f"http://127.0.0.1:{server.server_address[1]}/?width={WIDTH}")
        page.wait_frame()
        status = page.page.text_content("#status")
        assert "1 thread" in status and "single-threaded" in status, status
        assert mad(page.canvas(), cv2.resize(camera_frame(), (WIDTH, 240), interpolation=cv2.INTER_AREA)) > 15
        assert not page.uncaught()
        page.page.close()
    finally:
        server.shutdown()
        server.server_close()


def test_export_refuses_a_folder_in_use(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert cli.main(["serve", "--export", str(tmp_path), "-m", "shipwreck"]) == 2
    err = capsys.readouterr().err
    assert "not an earlier export" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


@pytest.mark.slow
def test_serve_command_torch_free(tmp_path):
    """``fastnst serve`` in a fresh interpreter with torch blocked: prints the URL, sends the isolation
    headers and the files, 404 elsewhere, and stops on SIGTERM."""
    from test_torch_free import _BLOCKED

    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_BLOCKED), "serve", "--port", "0", "-m", "shipwreck"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.split()[2]
        with urllib.request.urlopen(url) as r:
            assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert b"app.js" in r.read()
        with urllib.request.urlopen(url + "site.json") as r:
            site = json.load(r)
        assert [m["name"] for m in site["models"]] == ["shipwreck"] and site["contract"]["input"] == "frames"
        with urllib.request.urlopen(url + "vendor/ort-wasm-simd-threaded.wasm") as r:
            assert r.headers["Content-Type"] == "application/wasm"
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "nope.onnx")
        assert e.value.code == 404
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    assert rc == 128 + signal.SIGTERM, proc.stderr.read()


def test_serve_bad_model(tmp_path, capsys):
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    assert cli.main(["serve", "-m", str(tmp_path / "x.onnx")]) == 2
    assert "not a valid ONNX model" in capsys.readouterr().err


def test_webgpu_build_from_an_npm_install(tmp_path):
    from fastnst import UserError
    from fastnst.play.serve import WEBGPU_FILES

    dist = tmp_path / "node_modules" / "onnxruntime-web" / "dist"
    dist.mkdir(parents=True)
    for name in WEBGPU_FILES:
        (dist / name).write_bytes(b"//")
    table = site_table(["shipwreck"], tmp_path)
    assert all(table[f"vendor/{name}"] == dist / name for name in WEBGPU_FILES)
    assert json.loads(table["site.json"])["webgpu"] is True
    assert json.loads(site_table(["shipwreck"])["site.json"])["webgpu"] is False
    with pytest.raises(UserError, match="npm install onnxruntime-web"):
        site_table(["shipwreck"], tmp_path / "elsewhere")
