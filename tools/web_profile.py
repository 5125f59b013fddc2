"""Where onnxruntime-web's time goes: the per-op-type kernel times of a model in headless Chromium
(WebAssembly SIMD, onnxruntime-web's profiler), next to native onnxruntime's, one 640x480 frame.

    flock /tmp/fastnst-bench.lock python tools/web_profile.py [--model twelve_styles] [--threads 1]

Both: ``--threads`` intra-op threads, ORT_ENABLE_ALL, a frame of ``--size``, ``--warm`` runs then
``--runs`` more, profiled; printed: ms/run and each op type's kernel ms/run over the last
``--runs`` (``--nodes N``: also the N slowest nodes). In the browser the model runs on the page's
thread (no proxy worker), whose console gets the profiler's events.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from web_browser import chromium_args  # noqa: E402

from fastnst.play import contract  # noqa: E402
from fastnst.play.serve import make_server, server_url, site_table  # noqa: E402

# The page: onnxruntime-web on the page's thread (the profiler logs to this page's console).
PAGE = b"""<!doctype html><meta charset="utf-8"><script type="module">
window.profile = async (url, threads, warm, runs, w, h, styles) => {
  const ort = await import("./vendor/ort.wasm.min.mjs");
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "verbose";
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const s = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all",
    enableProfiling: true, logSeverityLevel: 0, logVerbosityLevel: 0 });
  const frame = new Uint8Array(w * h * 3).map((_, i) => (i * 7) & 255);
  const feeds = { [s.inputNames[0]]: new ort.Tensor("uint8", frame, [1, h, w, 3]) };
  if (styles) {
    const x = new Float32Array(styles);
    x[0] = 1;
    feeds[s.inputNames[1]] = new ort.Tensor("float32", x, [styles]);
  }
  for (let i = 0; i < warm; i++) await s.run(feeds);
  const t0 = performance.now();
  for (let i = 0; i < runs; i++) await s.run(feeds);
  const ms = (performance.now() - t0) / runs;
  s.endProfiling();
  return ms;
};
</script>"""


def native(model: Path, threads: int, warm: int, runs: int, w: int, h: int, styles: int) -> tuple[float, dict, dict]:
    import time

    import onnxruntime as ort
    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = threads
        opts.enable_profiling = True
        opts.profile_file_prefix = f"{tmp}/prof"
        sess = ort.InferenceSession(str(model), opts, providers=["CPUExecutionProvider"])
        feeds = contract.feeds((np.arange(w * h * 3) * 7 % 256).astype(np.uint8).reshape(1, h, w, 3),
                               np.eye(styles, dtype=np.float32)[0] if styles else None)
        for _ in range(warm):
            sess.run(None, feeds)
        t0 = time.perf_counter()
        for _ in range(runs):
            sess.run(None, feeds)
        ms = (time.perf_counter() - t0) / runs * 1e3
        events = json.load(open(sess.end_profiling()))
        return ms, kernel_times(events, runs), kernel_times(events, runs, True)


def kernel_times(events: list[dict], runs: int, by_node: bool = False) -> dict[str, float]:
    """op type (``by_node``: node name) -> kernel ms per run over the last
    ``runs`` runs (the warm-up's left out), from onnxruntime's profile events."""
    starts = sorted(e["ts"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run")
    first = starts[-runs] if len(starts) >= runs else 0
    per_op: collections.Counter = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= first:
            # native's NCHWc rewrite renames a conv "<name>_output_0_nchwc"
            node = event["name"].removesuffix("_kernel_time").removesuffix("_output_0_nchwc")
            key = node if by_node else event["args"]["op_name"]
            per_op[key] += event["dur"] / 1e3 / runs
    return dict(per_op)


def web(model: Path, threads: int, warm: int, runs: int, w: int, h: int, styles: int) -> tuple[float, dict, dict]:
    from playwright.sync_api import sync_playwright
    table = site_table([model])
    table["profile.html"] = PAGE
    url = next(m["url"] for m in json.loads(table["site.json"])["models"])
    server = make_server(table, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    lines: list[str] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=chromium_args())
            page = browser.new_page()
            page.on("console", lambda m: lines.append(m.text))
            page.goto(f"{server_url(server)}/profile.html")
            ms = page.evaluate("a => window.profile(...a)", [url, threads, warm, runs, w, h, styles])
            browser.close()
    finally:
        server.shutdown()
    events = []
    for line in lines:  # the profiler's events arrive one JSON object per console line
        start = line.find("{")
        if start >= 0 and '"cat"' in line:
            try:
                events.append(json.loads(line[start:].rstrip(",")))
            except json.JSONDecodeError:
                pass
    return ms, kernel_times(events, runs), kernel_times(events, runs, True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="twelve_styles")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size", default="640x480")
    ap.add_argument("--nodes", type=int, default=0, help="also the N slowest nodes in WebAssembly")
    args = ap.parse_args()
    model = Path(args.model) if args.model.endswith(".onnx") else ROOT / "models" / f"{args.model}.onnx"
    w, h = map(int, args.size.split("x"))
    import onnx
    ins = onnx.load(str(model), load_external_data=False).graph.input
    styles = ins[1].type.tensor_type.shape.dim[0].dim_value if len(ins) == 2 else 0
    web_ms, web_ops, web_nodes = web(model, args.threads, args.warm, args.runs, w, h, styles)
    nat_ms, nat_ops, nat_nodes = native(model, args.threads, args.warm, args.runs, w, h, styles)
    print(f"{model.name} {args.size}, {args.threads} thread(s); load {Path('/proc/loadavg').read_text().split()[:3]}")
    print(f"{'op type':<28}{'wasm ms':>9}{'native ms':>11}{'ratio':>7}")
    for op in sorted(set(web_ops) | set(nat_ops), key=lambda o: -web_ops.get(o, 0)):
        a, b = web_ops.get(op, 0.0), nat_ops.get(op, 0.0)
        print(f"{op:<28}{a:9.2f}{b:11.2f}{a / b if b else float('nan'):7.1f}")
    print(f"{'kernels, total':<28}{sum(web_ops.values()):9.2f}{sum(nat_ops.values()):11.2f}")
    print(f"{'run (ms, profiling on)':<28}{web_ms:9.2f}{nat_ms:11.2f}{web_ms / nat_ms:7.1f}")
    for node in sorted(web_nodes, key=lambda n: -web_nodes[n])[:args.nodes]:
        a, b = web_nodes[node], nat_nodes.get(node, 0.0)  # 0: a node the native optimizer fused away
        print(f"  {node:<40}{a:9.2f}{b:11.2f}")


if __name__ == "__main__":
    main()
