"""The learner behind `fastnst webcam --learn PAINTING`: a background process that adds the
painting to a shipped model while the player plays, and publishes the new style as it learns.

``python -m fastnst.learn.live WORK`` reads the run's training values from WORK/config.json
({"train_flags": {...}}, as ``fastnst.learn.recipe.resolve_train`` takes them), and trains it. Its files in WORK,
which the torch-free player side (``fastnst.play.live``) reads:

- ``frames/``: where the player saves camera frames; with a camera the run trains on them, and
  starts once ``MIN_FRAMES`` are there;
- ``live-NNNNNN.onnx``: the new style alone after step N (step 0: where it starts, its nearest
  style), written atomically at most every ``--every`` seconds;
- ``status.json``: {"step", "steps", "loss", "model", "state", "message"}; state is "starting",
  "training", "done" (model: the run's exported model), "interrupted" (a resumable checkpoint)
  or "failed".
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from fastnst import UserError
from fastnst.config import TrainConfig
from fastnst.play.files import atomic_path
from fastnst.play.images import list_images

log = logging.getLogger(__name__)

MIN_FRAMES = 8  # camera frames saved before the run starts: its data set
CONFIG, STATUS, FRAMES = "config.json", "status.json", "frames"


def write_status(work: Path, **fields) -> None:
    with atomic_path(work / STATUS) as tmp:
        tmp.write_text(json.dumps(fields))


class Publisher:
    """``train``'s on_step: the new style alone as ONNX every ``every`` seconds, and the status."""

    def __init__(self, work: Path, cfg: TrainConfig, every: float):
        self.work, self.cfg, self.every = work, cfg, every
        self.last = -float("inf")
        self.step = 0

    def __call__(self, step: int, steps: int, net, loss: float | None) -> None:
        from fastnst.learn.export import export_onnx, select_styles
        from fastnst.play.contract import META_NAME, META_STYLES

        now = time.monotonic()
        self.step = step
        status = {"step": step, "steps": steps, "loss": loss, "state": "training"}
        if now - self.last >= self.every or step == steps:
            self.last = now
            name = self.cfg.style_names[-1]
            one, cfg = select_styles(net, self.cfg, [name])
            path = export_onnx(one, self.work / f"live-{step:06d}.onnx",
                               {META_NAME: name, META_STYLES: json.dumps([name])})
            status["model"] = str(path)
            log.debug("published %s", path)
        elif (self.work / STATUS).is_file():
            status["model"] = json.loads((self.work / STATUS).read_text()).get("model")
        write_status(self.work, **status)


def wait_for_frames(folder: Path, n: int, timeout: float = 60.0) -> None:
    """Until ``folder`` holds ``n`` images (the player saves them), or a UserError."""
    end = time.monotonic() + timeout
    while len(list_images(folder)) < n:
        if time.monotonic() > end:
            raise UserError(f"no camera frames arrived in {folder} within {timeout:.0f} s")
        time.sleep(0.2)


def learn(work: Path, every: float) -> int:
    from fastnst.learn.recipe import resolve_train
    from fastnst.learn.train import train

    write_status(work, step=0, steps=0, loss=None, state="starting")
    publisher = None
    try:
        cfg = resolve_train(flags=json.loads((work / CONFIG).read_text())["train_flags"])
        publisher = Publisher(work, cfg, every)
        if Path(cfg.data).resolve() == (work / FRAMES).resolve():
            wait_for_frames(work / FRAMES, MIN_FRAMES)
        result = train(cfg, on_step=publisher)
    except KeyboardInterrupt:
        write_status(work, state="interrupted", step=publisher.step if publisher else 0,
                     message=str(cfg.run_dir) if publisher else "")
        return 130
    except Exception as e:  # the player goes on with what it has; the command line reports it
        write_status(work, state="failed", message=f"{type(e).__name__}: {e}".splitlines()[0])
        return 2
    write_status(work, state="done", step=result.step, steps=cfg.steps, loss=result.losses.get("total"),
                 model=str(result.onnx))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastnst.learn.live", description=__doc__.split("\n\n")[0])
    p.add_argument("work", type=Path)
    p.add_argument("--every", type=float, default=3.0, help="seconds between published models (default 3)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    return learn(args.work, args.every)


if __name__ == "__main__":
    sys.exit(main())
