"""The player's side of `fastnst webcam --learn PAINTING` (torch-free): it starts the learner
process (``fastnst.learn.live``), hands it camera frames and swaps in the models it publishes.

``LiveStyle`` is the player's per-frame hook: ``live(frame)`` saves every ``SAVE_EVERY``-th frame
for the learner (camera sources) and returns a new ``StyleModel`` when the learner has published
one since the last call (else None); ``live.status`` is the overlay's line (step and loss).
Everything goes through files in the work folder, whose layout ``fastnst.learn.live`` documents.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from fastnst.play.files import atomic_path
from fastnst.play.model import StyleModel

log = logging.getLogger(__name__)

SAVE_EVERY, MAX_FRAMES = 5, 64  # camera frames for the learner: every 5th, up to 64
CONFIG, STATUS, FRAMES = "config.json", "status.json", "frames"  # as fastnst.learn.live names them


class LiveStyle:
    """A learner process and what it publishes. ``wait_first``: block the first call until the
    learner's first model (its starting point) is there, so a video file plays from its first
    frame in the nearest style (a camera does not wait)."""

    def __init__(self, work: Path, config_json: str, name: str, save_frames: bool, wait_first: bool,
                 provider: str | None = None, threads: int | None = None, learner_threads: int = 1,
                 every: float = 3.0):
        self.work, self.name, self.save_frames, self.wait_first = work, name, save_frames, wait_first
        self.provider, self.threads = provider, threads
        (work / FRAMES).mkdir(parents=True, exist_ok=True)
        with atomic_path(work / CONFIG) as tmp:
            tmp.write_text(config_json)
        env = {**os.environ, "OMP_NUM_THREADS": str(learner_threads), "MKL_NUM_THREADS": str(learner_threads)}
        # Its own session: Ctrl-C reaches the player only, and ``finish`` passes one SIGINT on (a second
        # one would abort the learner without its checkpoint).
        self.proc = subprocess.Popen([sys.executable, "-m", "fastnst.learn.live", str(work), "--every", str(every)],
                                     env=env, start_new_session=True)
        self.frames = self.saved = 0
        self.model_path: str | None = None
        self.last: dict = {}

    def read_status(self) -> dict:
        try:
            self.last = json.loads((self.work / STATUS).read_text())
        except (OSError, ValueError):  # not written yet
            pass
        return self.last

    @property
    def status(self) -> str:
        s = self.last
        state = s.get("state", "starting")
        if state in ("training", "done") and s.get("step") is not None:
            loss = f"  loss {s['loss']:.4g}" if s.get("loss") is not None else ""
            return f"learning {self.name}: step {s['step']} of {s['steps']}{loss}" + ("  (done)" if state == "done" else "")
        return f"learning {self.name}: {state}"

    def __call__(self, frame: np.ndarray) -> StyleModel | None:
        if self.save_frames and self.saved < MAX_FRAMES and self.frames % SAVE_EVERY == 0:
            cv2.imwrite(str(self.work / FRAMES / f"{self.saved:04d}.jpg"), frame)
            self.saved += 1
        self.frames += 1
        status = self.read_status()
        while self.wait_first and self.model_path is None and not status.get("model") and self.proc.poll() is None:
            time.sleep(0.1)
            status = self.read_status()
        self.wait_first = False
        path = status.get("model") if status.get("state") != "done" else None  # the run's own model has every style
        if not path or path == self.model_path or not Path(path).is_file():
            return None
        self.model_path = path
        model = StyleModel(path, self.provider, self.threads)
        log.debug("playing %s", path)
        return model

    def finish(self, interrupted: bool, timeout: float | None = None) -> dict:
        """Wait for the learner (after Ctrl-C: for it to save its checkpoint) and return its last status."""
        if interrupted and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # it saves a resumable checkpoint, then exits
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait()
        return self.read_status()


def start_learning(painting: str, base: StyleModel, source: str, provider: str | None, threads: int,
                   say=log.info) -> LiveStyle:
    """`webcam --learn PAINTING`: the learner process, adding the painting to ``base`` on the
    source's frames in a run folder of its own, and the player's hook to it."""
    import importlib.util

    from fastnst import UserError
    from fastnst.play.video import camera_index

    if importlib.util.find_spec("torch") is None:
        raise UserError("learning while playing needs the train extra: pip install '.[train]' in the fastnst folder")
    if not Path(painting).is_file():
        raise UserError(f"painting not found: {painting}")
    name = Path(painting).stem
    run = Path("runs") / f"{base.path.stem}+{name}"
    for n in range(2, 1000):  # an earlier run stays as it is
        if not run.exists():
            break
        run = Path("runs") / f"{base.path.stem}+{name}-{n}"
    work = run / "live"
    camera = camera_index(source) is not None
    flags = {"add": [painting], "base": str(base.path), "run_dir": str(run),
             "data": str(work / FRAMES) if camera else source}
    say(f"learning {name} in the background (run folder {run}); playing the nearest style of {base.path.stem} "
        f"once it is found")
    return LiveStyle(work, json.dumps({"train_flags": flags}), name, save_frames=camera, wait_first=not camera,
                     provider=provider, threads=threads, learner_threads=max(1, (os.cpu_count() or 2) - threads))


def finish_learning(live: LiveStyle, interrupted: bool, say=log.info) -> tuple[dict, bool]:
    """Wait for the learner (Ctrl-C: stop it, keeping a resumable run); its last status, and whether it
    was interrupted."""
    if not interrupted and live.proc.poll() is None and live.read_status().get("state") != "done":
        say(f"{live.status}: finishing the run (Ctrl-C stops it and keeps a resumable checkpoint)")
    try:
        return live.finish(interrupted), interrupted
    except KeyboardInterrupt:
        return live.finish(True), True
