"""The live player: a capture thread, an OpenCV window, keys, recording (no torch).

``run_player`` drives one loop over any ``cv2.VideoCapture``-like source (``read() -> (ok,
frame)``); each frame goes through ``runtime.FramePipeline.stylize``, the same per-frame path
as ``fastnst stylize``. ``handle_key`` is the whole keyboard logic as a pure function;
``PlayerSummary`` holds the per-stage timings that headless mode prints and why the loop stopped.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fastnst import UserError
from fastnst.play.images import save_image
from fastnst.play.runtime import FramePipeline, StyleModel, processing_size
from fastnst.play.video import VideoSink

log = logging.getLogger(__name__)

STAGES = ("capture", "pre-process", "inference", "post-process", "display/write")
STRENGTH_STEP = 0.1
MIX_STEP = 0.1  # of the blended style's weight, keys [ and ]
KEY_ENTER, KEY_ESC = (10, 13), 27
WINDOW = "fastnst"


# ---------------------------------------------------------------- keys -> state
@dataclass(frozen=True)
class PlayerState:
    """Everything the keys control. ``snapshot`` is a one-shot request the loop clears.

    n/p and 1-9 step through every style of every model: ``styles`` holds each model's style
    count (``run_player`` fills it in). ``blend`` (a style of the same model) is mixed in with
    weight ``mix``; ``weights`` plays other weights (a blend of 3+ styles) until a style key.
    """

    model: int = 0
    style: int = 0
    styles: tuple[int, ...] = (1,)  # styles per model
    blend: int | None = None
    mix: float = 0.5
    weights: tuple[float, ...] | None = None
    show_original: bool = False
    split: bool = False
    preserve_color: bool = False
    strength: float = 1.0
    mirror: bool = False
    smooth: bool = False  # flow-guided temporal smoothing (fewer flickering strokes)
    recording: bool = False
    snapshot: bool = False
    quit: bool = False

    @property
    def entries(self) -> list[tuple[int, int]]:
        """Every (model, style), in the order n/p and 1-9 step through them."""
        return [(m, s) for m, n in enumerate(self.styles) for s in range(n)]

    @property
    def played(self) -> tuple:
        """What decides the style weights: they change exactly when this does."""
        return self.model, self.style, self.blend, self.mix, self.weights

    def style_weights(self) -> np.ndarray:
        """The current model's style weights, (S,) float32."""
        if self.weights is not None:
            return np.asarray(self.weights, np.float32)
        w = np.zeros(self.styles[self.model], np.float32)
        w[self.style] = 1.0
        if self.blend is not None:
            w *= 1.0 - self.mix
            w[self.blend] += self.mix
        return w


def style_fields(weights: np.ndarray) -> dict:
    """``PlayerState`` fields that play ``weights`` (S,): a style, a blend of two, or the weights themselves."""
    on = sorted(np.flatnonzero(weights), key=lambda i: -weights[i])
    fields = {"style": int(on[0]), "blend": None, "weights": None}
    if len(on) == 2:
        fields.update(blend=int(on[1]), mix=float(weights[on[1]] / weights[on].sum()))
    elif len(on) > 2:
        fields["weights"] = tuple(map(float, weights))
    return fields


def handle_key(state: PlayerState, key: int) -> PlayerState:
    """The new state after ``key`` (a ``cv2.waitKey`` code; -1: no key). Pure: no I/O."""
    if key < 0:
        return state
    key &= 0xFF
    ch = chr(key)
    r = dataclasses.replace
    if ch in "qQ" or key == KEY_ESC:
        return r(state, quit=True)
    entries = state.entries
    if ch in "np" or (ch in "123456789" and int(ch) <= len(entries)):
        i = int(ch) - 1 if ch.isdigit() else entries.index((state.model, state.style)) + (1 if ch == "n" else -1)
        model, style = entries[i % len(entries)]
        return r(state, model=model, style=style, blend=None, weights=None)
    if ch == "b":  # blend the current style with the model's next one, or stop blending
        n = state.styles[state.model]
        if n < 2:
            return state
        blend = (state.style + 1) % n if state.blend is None else None
        return r(state, blend=blend, mix=0.5, weights=None)
    if ch in "[]" and state.blend is not None:
        step = MIX_STEP if ch == "]" else -MIX_STEP
        return r(state, mix=min(1.0, max(0.0, round(state.mix + step, 2))))
    if ch == " ":
        return r(state, show_original=not state.show_original)
    if ch == "s":
        return r(state, split=not state.split)
    if ch == "c":
        return r(state, preserve_color=not state.preserve_color)
    if ch in "+=":  # '=' is '+' without shift
        return r(state, strength=min(1.0, round(state.strength + STRENGTH_STEP, 2)))
    if ch in "-_":
        return r(state, strength=max(0.0, round(state.strength - STRENGTH_STEP, 2)))
    if ch == "m":
        return r(state, mirror=not state.mirror)
    if ch == "f":  # "flicker"
        return r(state, smooth=not state.smooth)
    if ch == "r":
        return r(state, recording=not state.recording)
    if key in KEY_ENTER:
        return r(state, snapshot=True)
    return state


# ---------------------------------------------------------------- capture
class CaptureThread:
    """Reads frames from ``cap`` in a thread.

    ``keep_latest=True`` (cameras, streams): only the newest frame is kept, so latency never
    grows when inference is slower than the camera. ``keep_latest=False`` (video files): every
    frame is delivered in order, reading one frame ahead.
    """

    def __init__(self, cap, keep_latest: bool, max_failures: int = 50):
        self._cap = cap
        self._keep_latest = keep_latest
        self._max_failures = max_failures if keep_latest else 1  # a file's first failed read is its end
        self._frames: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.ended = False
        self.failed = False  # ended because a live source stopped delivering frames
        self.error: Exception | None = None  # what the reading raised, if it did
        self._thread = threading.Thread(target=self._run, name="fastnst-capture", daemon=True)

    def start(self) -> CaptureThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set():
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    failures += 1
                    if failures >= self._max_failures:
                        self.failed = self._keep_latest
                        break
                    time.sleep(0.02)
                    continue
                failures = 0
                item = (frame, time.perf_counter())
                with self._cond:
                    while self._frames and not self._stop.is_set():  # one frame held at a time
                        if self._keep_latest:
                            self._frames.popleft()  # drop the stale frame
                        else:
                            self._cond.wait(0.1)
                    self._frames.append(item)
                    self._cond.notify_all()
        except Exception as e:  # handed to the player's thread by get()
            self.error = e
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def get(self) -> tuple[np.ndarray, float] | None:
        """The next frame and the ``perf_counter()`` time it was read; None once the source ended.
        UserError if reading the source raised."""
        with self._cond:
            while not self._frames and not self.ended:
                self._cond.wait(0.1)  # a timeout, so Ctrl-C gets through
            if not self._frames and self.error is not None:
                raise UserError(f"reading the source failed: {self.error}")
            if not self._frames:
                return None
            item = self._frames.popleft()
            self._cond.notify_all()
            return item

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=2.0)


# ---------------------------------------------------------------- summary
class StopReason(enum.Enum):
    """Why ``run_player`` returned; the value is the text the summary shows."""

    END_OF_VIDEO = "end of video"
    SOURCE_LOST = "the source stopped delivering frames"  # a camera or stream, not a file's end
    FRAME_LIMIT = "frame limit reached"
    QUIT = "quit"
    INTERRUPTED = "interrupted"  # Ctrl-C


@dataclass
class PlayerSummary:
    frames: int = 0
    seconds: float = 0.0
    stop_reason: StopReason | None = None
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})  # ms per frame
    latency: list[float] = field(default_factory=list)  # ms, frame read -> shown/written
    outputs: list[Path] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        return self.stop_reason is StopReason.INTERRUPTED

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def stylize_fps(self) -> float:
        """The frame rate of the stylizing alone (pre-processing, inference, post-processing):
        what the player reaches when the camera and the window do not hold it back."""
        work = [sum(ms) for ms in zip(*(self.stages[s] for s in ("pre-process", "inference", "post-process")))]
        ms = float(np.median(work)) if work else 0.0
        return 1000 / ms if ms > 0 else 0.0

    def width_for(self, width: int, target_fps: float = 30.0) -> int | None:
        """A processing width (a multiple of 32, at least 160) that should stylize at
        ``target_fps``, from ``stylize_fps`` at ``width``: the work grows with the pixel count, and
        the width aims 10% above the target, since a machine's speed varies from run to run.
        None where it is already about that fast."""
        if not 0 < self.stylize_fps < 0.9 * target_fps:
            return None
        smaller = max(160, int(width * (self.stylize_fps / (1.1 * target_fps)) ** 0.5) // 32 * 32)
        return smaller if smaller < width else None

    def format(self) -> str:
        lines = [f"{self.frames} frames in {self.seconds:.2f} s: {self.fps:.2f} fps ({self.stop_reason and self.stop_reason.value})",
                 f"  {'stage':<15}{'median ms':>10}{'p95 ms':>10}"]
        for name, ms in [*self.stages.items(), ("end-to-end", self.latency)]:
            if ms:
                lines.append(f"  {name:<15}{np.median(ms):>10.2f}{np.percentile(ms, 95):>10.2f}")
        lines += [f"  wrote {p}" for p in self.outputs]
        return "\n".join(lines)


# ---------------------------------------------------------------- the loop
def draw_label(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.6) -> None:
    """White text with a black outline at ``org`` (its baseline's left end), in place. The
    outline is the same text shifted, not drawn thicker: OpenCV spaces thicker text wider."""
    x, y = org
    for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
        cv2.putText(img, text, (x + dx, y + dy), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _overlay(view: np.ndarray, state: PlayerState, name: str, fps: float, latency_ms: float) -> None:
    toggles = {"original": state.show_original, "split": state.split, "colour": state.preserve_color,
               "mirror": state.mirror, "smooth": state.smooth, "REC": state.recording}
    flags = [f"strength {state.strength:.1f}"] + [name for name, on in toggles.items() if on]
    for i, text in enumerate((f"{name}  {fps:.1f} fps  {latency_ms:.0f} ms", "  ".join(flags))):
        draw_label(view, text, (8, 22 + 22 * i))


def check_display() -> None:
    """Raise UserError when no window can be opened (a Linux server without X or Wayland)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display to open a window on: use --no-display (with --frames N and --output out.mp4)")


def _timestamped(folder: Path, prefix: str, suffix: str) -> Path:
    return folder / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() // 1_000_000 % 1000:03d}{suffix}"


def run_player(models: list[StyleModel], cap, *, keep_latest: bool, width: int | None = 640,
               display: bool = True, max_frames: int | None = None, output: Path | None = None,
               record_dir: Path = Path("."), fps: float = 30.0, state: PlayerState | None = None,
               live=None) -> PlayerSummary:
    """Stylize frames from ``cap`` until the source ends, ``max_frames``, 'q' or Ctrl-C.

    ``keep_latest``: see ``CaptureThread`` (True for cameras). ``width``: the processing width
    (None: the source's). ``output``: write every shown frame to this video (``fps`` frames/s;
    from a camera, each frame repeated or dropped so that the file plays at the speed it was seen).
    With ``display=False`` nothing is shown and no keys are read. The caller owns ``cap``.
    ``live``: a model learning beside the player (``fastnst.play.live.LiveStyle``), called with each
    frame; a model it returns replaces the current one, and its ``status`` is an overlay line.
    """
    state = dataclasses.replace(state or PlayerState(), styles=tuple(len(m.styles) for m in models))
    played, label = None, ""  # the state whose style weights the model has, and its overlay name
    summary = PlayerSummary()
    pipeline = FramePipeline()
    sink = VideoSink(output, fps) if output else None  # checks the output path before anything starts
    recorder: VideoSink | None = None
    capture: CaptureThread | None = None
    shown_fps, stop, window_seen = 0.0, None, False
    mirrored = state.mirror  # of the previous frame: a flip breaks the smoothing history
    t_start = time.perf_counter()
    try:
        if display:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL)  # the frame is scaled to the window
        capture = CaptureThread(cap, keep_latest).start()
        t_start = time.perf_counter()
        while not (max_frames and summary.frames >= max_frames):
            t0 = time.perf_counter()
            item = capture.get()
            if item is None:
                stop = StopReason.SOURCE_LOST if capture.failed else StopReason.END_OF_VIDEO
                break
            frame, t_read = item
            t1 = time.perf_counter()
            size = processing_size(frame.shape[1], frame.shape[0], width)
            small = pipeline.preprocess(frame, size, state.mirror)  # (h, w, 3) BGR: what is shown
            t2 = time.perf_counter()
            if state.show_original or state.mirror != mirrored:  # a gap in the stylized stream, or a flip
                pipeline.reset_smoothing()
            mirrored = state.mirror
            if live is not None and (fresh := live(frame)) is not None:
                models[state.model] = fresh
                state = dataclasses.replace(state, styles=tuple(len(m.styles) for m in models), style=0, blend=None,
                                            weights=None)
                played = None
            model = models[state.model]
            if state.played != played:  # a new style or blend: set once, not per frame
                model.set_style(state.style_weights())
                played, label = state.played, model.label()
                pipeline.reset_smoothing()  # the history is another style's
            styled = small if state.show_original else pipeline.stylize(
                model, small, strength=state.strength, preserve_color=state.preserve_color,
                smooth=state.smooth)
            view = cv2.hconcat([small, styled]) if state.split else styled
            t4 = time.perf_counter()
            t3 = t2 + (0.0 if styled is small else pipeline.inference_ms / 1000)  # then post-process, split view

            at = t_read if keep_latest else None  # a camera's files follow the wall clock, a video's its frames
            if sink:
                sink.write(view, at)
            if state.recording and recorder is None:
                recorder = VideoSink(_timestamped(record_dir, "fastnst", ".mp4"), fps, (view.shape[1], view.shape[0]))
                log.info("recording to %s", recorder.path)
            elif not state.recording and recorder is not None:
                if (path := recorder.close()) is not None:
                    summary.outputs.append(path)
                recorder = None
            if recorder:
                recorder.write(view, at)
            if state.snapshot:
                summary.outputs.append(save_image(cv2.cvtColor(view, cv2.COLOR_BGR2RGB),
                                                  _timestamped(record_dir, "fastnst", ".png")))
                state = dataclasses.replace(state, snapshot=False)
            if display:
                if view is small:
                    view = view.copy()  # don't draw on the captured frame
                _overlay(view, state, label, shown_fps,
                         summary.latency[-1] if summary.latency else 0.0)
                if live is not None:
                    draw_label(view, live.status, (8, 66))
                cv2.imshow(WINDOW, view)
                state = handle_key(state, cv2.waitKey(1))
                visible = cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1
                if window_seen and not visible:  # closed with the mouse (some backends map it late)
                    state = dataclasses.replace(state, quit=True)
                window_seen |= visible
            t5 = time.perf_counter()

            for name, (a, b) in zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5))):
                summary.stages[name].append((b - a) * 1000)
            summary.latency.append((t5 - t_read) * 1000)
            summary.frames += 1
            rate = 1.0 / max(t5 - t0, 1e-6)
            shown_fps = rate if summary.frames == 1 else 0.9 * shown_fps + 0.1 * rate  # smoothed for the overlay
            if state.quit:
                stop = StopReason.QUIT
                break
        else:
            stop = StopReason.FRAME_LIMIT
    except KeyboardInterrupt:
        stop = StopReason.INTERRUPTED
    except BaseException:  # an error: its files are not finished videos, so none is left behind
        for s in (sink, recorder):
            if s is not None:
                s.abort()
        sink = recorder = None
        raise
    finally:
        summary.seconds = time.perf_counter() - t_start
        if capture is not None:
            capture.stop()
        failed = []
        for s in (sink, recorder):  # finalized even on Ctrl-C or a lost camera: the file stays playable
            try:
                if s is not None and (path := s.close()) is not None:
                    summary.outputs.append(path)
            except UserError as e:  # this file failed its read-back; the other one still gets closed
                failed.append(e)
        if display:
            cv2.destroyAllWindows()
        if failed:
            raise failed[0]
    summary.stop_reason = stop
    return summary
