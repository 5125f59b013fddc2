"""Re-vendor onnxruntime-web's WebAssembly build into fastnst/web/vendor/ from the npm registry.

    python tools/vendor_onnxruntime_web.py            # the pinned VERSION below
    python tools/vendor_onnxruntime_web.py 1.32.0     # another version (then update VERSION and docs/web.md)

Needs npm. Only the files the page's WebAssembly path loads are kept (the WebGPU build is 30 MB
more: `fastnst serve --onnxruntime-web DIR` serves it from an npm install instead).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VERSION = "1.31.1"
FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
VENDOR = Path(__file__).resolve().parents[1] / "fastnst" / "web" / "vendor"
LICENSE = """MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def main(version: str = VERSION) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["npm", "pack", "--silent", f"onnxruntime-web@{version}"], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        with tarfile.open(next(Path(tmp).glob("onnxruntime-web-*.tgz"))) as tar:
            tar.extractall(tmp, filter="data")
        dist = Path(tmp) / "package" / "dist"
        VENDOR.mkdir(parents=True, exist_ok=True)
        sums = []
        for name in FILES:
            shutil.copyfile(dist / name, VENDOR / name)
            sums.append(f"{hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()}  {name}")
    # The npm package carries no licence file: ONNX Runtime's MIT licence, from its repository.
    (VENDOR / "LICENSE").write_text(LICENSE)
    (VENDOR / "VERSION").write_text(f"onnxruntime-web {version} (npm)\n" + "\n".join(sums) + "\n")
    print(f"vendored onnxruntime-web {version} into {VENDOR}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
