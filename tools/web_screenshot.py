"""The README's screenshot of the page: ``fastnst serve``'s page in headless Chromium, its fake camera
playing ../shared/data/videos/vtest.avi, on a style (and a blend) of twelve_styles.

    python tools/web_screenshot.py docs/web.png --style 0/1
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from web_browser import CHROMIUM, chromium_args, write_y4m  # noqa: E402
from web_fps import CLIP, clip_frames  # noqa: E402

from fastnst.play.serve import make_server, server_url, site_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("output")
    ap.add_argument("--style", default="0/0", help="the style picker's value, MODEL/STYLE (default 0/0)")
    ap.add_argument("--blend", help="blend with this style index of the same model, 50/50")
    ap.add_argument("--size", default="1100x560", help="window WxH")
    ap.add_argument("--clip", type=Path, default=CLIP, help="the fake camera's video (default: %(default)s)")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    w, h = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        cam = write_y4m(Path(tmp) / "cam.y4m", clip_frames(30, args.clip))
        server = make_server(site_table(["twelve_styles", "shipwreck"]), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        browser = p.chromium.launch(executable_path=CHROMIUM, args=chromium_args(cam))
        page = browser.new_page(viewport={"width": w, "height": h})
        page.goto(server_url(server))
        page.wait_for_function("window.fastnst && window.fastnst.frames > 2", timeout=120_000)
        page.select_option("#style", args.style)
        if args.blend:
            page.select_option("#blend-style", args.blend)
        page.wait_for_function("window.fastnst.shown === window.fastnst.changes")
        time.sleep(3)  # a settled fps figure in the status line
        page.screenshot(path=args.output)
        browser.close()
        server.shutdown()
    print(args.output)


if __name__ == "__main__":
    main()
