"""`fastnst webcam`: the models, the source, the virtual camera and the learner of one live session,
checked and set up around ``run_player``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from fastnst import UserError
from fastnst.play.files import check_output_path
from fastnst.play.model import StyleModel, select_style
from fastnst.play.pipeline import check_settings
from fastnst.play.player import PlayerState, PlayerSummary, StopReason, check_display, run_player, style_fields
from fastnst.play.shipped import models_or_shipped
from fastnst.play.video import OUTPUT_VIDEO_SUFFIXES, open_capture, source_fps, source_size

log = logging.getLogger(__name__)


@dataclass
class WebcamOptions:
    """One session. ``models``: files or shipped names (default: every shipped model, the one with the
    most styles first); ``style``: the one to start on (a name or a blend); ``width``: the processing
    width (0: the source's); ``virtual_camera``: a device ("" the first; None: no virtual camera);
    ``learn``: a painting to learn as a new style while playing."""

    models: list[str] | None = None
    style: str | None = None
    source: str = "0"
    width: int = 640
    display: bool = True
    frames: int | None = None
    virtual_camera: str | None = None
    loop: bool = False
    pace: bool = True
    output: str | None = None
    record_dir: str = "."
    strength: float = 1.0
    preserve_color: bool = False
    mirror: bool = False
    smooth: bool = False
    learn: str | None = None
    provider: str | None = None
    threads: int | None = None


@dataclass
class WebcamRun:
    """What a session did; with ``learn``, the learner's last status and whether it was interrupted."""

    summary: PlayerSummary
    learned: dict | None = None
    interrupted: bool = False
    learned_name: str = ""

    @property
    def learn_failed(self) -> bool:
        return self.learned is not None and self.learned.get("state") not in ("done", "interrupted")

    def learn_report(self) -> str:
        """What became of the learned style: its model, how to resume its run, or why it failed."""
        s = self.learned or {}
        if s.get("state") == "done":
            return f"model: {s['model']} (play it: fastnst webcam --model {s['model']} --style {self.learned_name})"
        if s.get("state") == "interrupted":
            return f"stopped at step {s.get('step', 0)}; resume with: fastnst train --resume {s['message']}"
        return f"learning {self.learned_name} failed: {s.get('message', 'the learner exited')}"


def run_webcam(o: WebcamOptions, say=log.info) -> WebcamRun:
    """Play ``o``'s models on its source until it ends, ``o.frames``, 'q' or Ctrl-C; ``say`` tells the
    user what started (the shipped models, the virtual camera, the learner)."""
    from fastnst.play.live import finish_learning, start_learning
    from fastnst.play.vcam import open_virtual_camera

    check_settings(o.strength, o.width or None, "width (0: the source's)")
    if o.frames is not None and o.frames < 1:
        raise UserError(f"frames must be at least 1, got {o.frames}")
    if o.loop and not Path(o.source).is_file():
        raise UserError(f"loop repeats a video file; {o.source} is a camera or stream")
    if o.display:
        check_display()
        check_output_path(Path(o.record_dir) / "snapshot.png")  # for 'r' and Enter, before the window opens
    if o.output:
        check_output_path(o.output, OUTPUT_VIDEO_SUFFIXES, (o.source,), "video")
    names = models_or_shipped(o.models)
    threads = o.threads
    if o.learn and threads is None:  # the cores split between the player and the learner
        threads = max(1, (os.cpu_count() or 2) // 2)
    models = [StyleModel(m, o.provider, threads) for m in names]
    if not o.models:  # the shipped model with the most styles plays first
        models.sort(key=lambda m: -len(m.style_names))
    start = {}
    if o.style:
        model, weights = select_style(models, o.style)
        start = {"model": model, **style_fields(weights)}
    if not o.models:
        say(f"shipped models: {', '.join(m.path.stem for m in models)} (n/p or 1-9 to switch, l lists the styles)")
    cap = open_capture(o.source)
    vcam = None
    live = start_learning(o.learn, models[0], o.source, o.provider, threads, say) if o.learn else None
    try:
        is_file = Path(o.source).is_file()
        if o.virtual_camera is not None:  # at the source's size and rate, as the camera it stands in for
            vcam = open_virtual_camera(*source_size(cap), source_fps(cap), o.virtual_camera or None)
            say(f"virtual camera: {vcam.stats.device} ({vcam.size[0]}x{vcam.size[1]}); pick it in the call's "
                f"camera settings")
        summary = run_player(
            models, cap, keep_latest=not is_file, width=o.width or None, display=o.display, max_frames=o.frames,
            output=Path(o.output) if o.output else None, record_dir=Path(o.record_dir), fps=source_fps(cap),
            state=PlayerState(strength=o.strength, preserve_color=o.preserve_color, mirror=o.mirror,
                              smooth=o.smooth, **start),
            pace=is_file and o.pace and (vcam is not None or o.display), loop=o.loop, vcam=vcam, live=live)
    except BaseException:
        if live is not None:
            live.finish(interrupted=True)
        raise
    finally:
        if vcam is not None:
            vcam.close()
        cap.release()
    if live is not None:
        say(summary.format())
        status, interrupted = finish_learning(live, summary.stop_reason is StopReason.INTERRUPTED, say)
        return WebcamRun(summary, status, interrupted or status.get("state") == "interrupted", live.name)
    if summary.frames == 0 and summary.stop_reason is StopReason.END_OF_VIDEO:
        raise UserError(f"cannot read any frame from {o.source}")
    return WebcamRun(summary)
