"""Fingerprints of what fastnst does, through its command line only, to show a refactor changes nothing.

Prints one ``case sha256`` line per case: every style of every shipped model on photos and a video
(plain, blended, half strength, colour kept, smoothed), a style sheet, a re-export of a shipped model,
and three 20-step training runs (one painting, two paintings, a painting added to a shipped model):
their metrics.jsonl without the wall-clock fields, and their exported model's outputs.
Run it before and after a change and diff the two files:

    python tools/behaviour_hashes.py --data ../shared/data > before.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

CLOCK_FIELDS = {"time", "images_per_s", "step_s", "seconds"}


def fastnst(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "fastnst", *argv], check=True, stdout=subprocess.DEVNULL)


def pixels_sha(path: Path) -> str:
    if path.suffix == ".mp4":
        cap, frames = cv2.VideoCapture(str(path)), []
        while (ok := cap.read())[0]:
            frames.append(ok[1])
        data = np.stack(frames)
    else:
        data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()[:16]


def metrics_sha(path: Path) -> str:
    rows = [{k: v for k, v in json.loads(line).items() if k not in CLOCK_FIELDS} for line in path.read_text().splitlines()]
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()[:16]


def stylize_cases(tmp: Path, model: str, inputs: list[str], styles: list[str]) -> dict[str, str]:
    out = {}
    variants = {"plain": [], "half": ["--strength", "0.5"], "color": ["--preserve-color"], "small": ["--size", "160"]}
    for i, style in enumerate(styles):
        for name, extra in variants.items():
            d = tmp / f"{Path(model).stem}-{i}-{name}"
            fastnst("stylize", *inputs, "-m", model, *(["--style", style] if style else []), "-o", str(d), *extra,
                    "--threads", "1")
            for f in sorted(d.iterdir()):
                out[f"stylize {model} {style or '-'} {name} {f.name}"] = pixels_sha(f)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="the test data folder")
    ap.add_argument("--no-train", action="store_true", help="skip the three training runs")
    args = ap.parse_args()
    data = Path(args.data).resolve()
    photos = [str(p) for p in sorted((data / "content").glob("*.jpg"))[-2:]]
    video = tmp_video = None
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        tmp_video = tmp / "clip.avi"
        cap, writer = cv2.VideoCapture(str(data / "videos" / "vtest.avi")), None
        for _ in range(8):  # a short clip: smoothing and the video path, in seconds
            frame = cv2.resize(cap.read()[1], (320, 240))
            writer = writer or cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
            writer.write(frame)
        writer.release()
        video = str(tmp_video)
        names = ["scream", "starry_night", "wave", "composition_vii", "shipwreck", "cafe_terrace", "wheat_field",
                 "olive_trees", "van_gogh_self_portrait", "houses_at_auvers", "tahitian_women", "edtaonisl"]
        out |= stylize_cases(tmp, "twelve_styles", photos, [*names, "scream:0.7,wave:0.3"])
        out |= stylize_cases(tmp, "shipwreck", photos, [""])
        for model, style in (("twelve_styles", "starry_night"), ("shipwreck", "")):
            d = tmp / f"video-{model}"
            fastnst("stylize", video, "-m", model, *(["--style", style] if style else []), "--smooth", "-o", str(d),
                    "--threads", "1")
            out[f"video {model} smooth"] = pixels_sha(next(d.iterdir()))
        fastnst("stylize", "-m", "twelve_styles", "--sheet", photos[0], "-o", str(tmp / "sheet.png"), "--size", "128")
        out["sheet twelve_styles"] = pixels_sha(tmp / "sheet.png")
        fastnst("export", "twelve_styles", "--styles", "wave,scream", "--rename", "wave=w", "-o", str(tmp / "two.onnx"))
        out |= stylize_cases(tmp, str(tmp / "two.onnx"), photos[:1], ["w", "scream"])
        if not args.no_train:
            common = ["--data", str(data / "content"), "--holdout", "50", "--steps", "20", "--image-size", "64",
                      "--batch-size", "2", "--log-every", "1", "--preview-every", "10", "--checkpoint-every", "10",
                      "--device", "cpu", "--precision", "fp32", "--workers", "0"]
            runs = {
                "one": ["--style", str(data / "styles" / "scream.jpg")],
                "two": ["--style", str(data / "styles" / "scream.jpg"), "--style", str(data / "styles" / "wave.jpg"),
                        "--lr-schedule", "cosine"],
                "add": ["--add-style", str(data / "styles_unseen" / sorted(p.name for p in (data / "styles_unseen").glob("*.jpg"))[0]),
                        "--base", "twelve_styles", "--add-from", "mean"],
            }
            for name, extra in runs.items():
                run = tmp / f"run-{name}"
                fastnst("train", *common, *extra, "--run-dir", str(run), "-o", str(run / f"{name}.onnx"))
                out[f"train {name} metrics"] = metrics_sha(run / "metrics.jsonl")
                out |= stylize_cases(tmp, str(run / f"{name}.onnx"), photos[:1], [""])
    for k, v in out.items():
        print(f"{k.replace(str(tmp), '<tmp>')} {v}")


if __name__ == "__main__":
    main()
