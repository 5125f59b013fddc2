"""The live player: a capture thread, an OpenCV window, keys, recording (no torch).

``run_player`` drives one loop over any ``cv2.VideoCapture``-like source (``read() -> (ok,
frame)``); each frame goes through ``pipeline.FramePipeline.stylize``, the same per-frame path
as ``fastnst stylize``. ``handle_key`` is the whole keyboard logic as a pure function;
``PlayerSummary`` holds the per-stage timings that headless mode prints and why the loop stopped.
A ``vcam.VirtualCamera`` given to ``run_player`` gets every frame shown, without the overlay.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from fastnst import UserError
from fastnst.play.images import save_image
from fastnst.play.model import StyleModel
from fastnst.play.overlay import FONT_SCALE, draw_label, draw_panel, window_picture
from fastnst.play.pipeline import FramePipeline, processing_size
from fastnst.play.vcam import VirtualCamera, VirtualCameraStats
from fastnst.play.video import VideoSink

log = logging.getLogger(__name__)

STAGES = ("capture", "pre-process", "inference", "post-process", "display/write")
STRENGTH_STEP = 0.1
MIX_STEP = 0.1  # of the blended style's weight, keys [ and ]
KEY_ENTER, KEY_ESC = (10, 13), 27
WINDOW = "fastnst"
HELP_SECONDS = 6.0  # the key help shows this long at the start, unless h or ? toggles it first
DIGIT_SECONDS = 1.0  # a second digit within this time makes a two-digit style number
KEYS = (  # the window's key help and the summary's key line
    ("n / p", "next / previous style"),
    ("1-9", "style N; two digits quickly for 10 and up"),
    ("l", "list the styles with their numbers"),
    ("b", "blend with the model's next style"),
    ("[ / ]", "move the blend"),
    ("space", "original / stylized"),
    ("s", "split view"),
    ("c", "keep the colours"),
    ("+ / -", "strength"),
    ("m", "mirror"),
    ("f", "smoothing (less flicker)"),
    ("r", "record"),
    ("Enter", "snapshot"),
    ("h / ?", "this help"),
    ("q / Esc", "quit"),
)


# ---------------------------------------------------------------- keys -> state
@dataclass(frozen=True)
class PlayerState:
    """Everything the keys control. ``snapshot`` is a one-shot request the loop clears.

    ``model`` and ``style_index`` say what plays. n/p and the digits step through every style of
    every model: ``style_counts`` holds each model's style count (``run_player`` fills it in);
    ``digits`` is the style number being typed (the loop clears it after ``DIGIT_SECONDS``), so 1
    then 3 plays the 13th. ``blend_index`` (a style of the same model) is mixed in with weight
    ``mix``; ``style_weights`` plays other weights (a blend of 3+ styles) until a style key.
    """

    model: int = 0
    style_index: int = 0
    style_counts: tuple[int, ...] = (1,)  # styles per model
    blend_index: int | None = None
    mix: float = 0.5
    style_weights: tuple[float, ...] | None = None
    show_original: bool = False
    split: bool = False
    preserve_color: bool = False
    strength: float = 1.0
    mirror: bool = False
    smooth: bool = False  # flow-guided temporal smoothing (fewer flickering strokes)
    recording: bool = False
    help: bool = False  # the key help overlay
    style_list: bool = False  # the overlay listing every style with its number
    digits: str = ""
    snapshot: bool = False
    quit: bool = False

    @property
    def entries(self) -> list[tuple[int, int]]:
        """Every (model, style), in the order n/p and the digits step through them."""
        return [(m, s) for m, n in enumerate(self.style_counts) for s in range(n)]

    @property
    def played(self) -> tuple:
        """What decides the style weights: they change exactly when this does."""
        return self.model, self.style_index, self.blend_index, self.mix, self.style_weights

    def played_weights(self) -> np.ndarray:
        """The current model's style weights, (S,) float32."""
        if self.style_weights is not None:
            return np.asarray(self.style_weights, np.float32)
        w = np.zeros(self.style_counts[self.model], np.float32)
        w[self.style_index] = 1.0
        if self.blend_index is not None:
            w *= 1.0 - self.mix
            w[self.blend_index] += self.mix
        return w


def style_fields(weights: np.ndarray) -> dict:
    """``PlayerState`` fields that play ``weights`` (S,): a style, a blend of two, or the weights themselves."""
    on = sorted(np.flatnonzero(weights), key=lambda i: -weights[i])
    fields = {"style_index": int(on[0]), "blend_index": None, "style_weights": None}
    if len(on) == 2:
        fields.update(blend_index=int(on[1]), mix=float(weights[on[1]] / weights[on].sum()))
    elif len(on) > 2:
        fields["style_weights"] = tuple(map(float, weights))
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
    if ch.isdigit():
        return _style_number(state, ch)
    state = r(state, digits="") if state.digits else state
    if ch in "np":
        i = entries.index((state.model, state.style_index)) + (1 if ch == "n" else -1)
        model, style_index = entries[i % len(entries)]
        return r(state, model=model, style_index=style_index, blend_index=None, style_weights=None)
    if ch in "h?":
        return r(state, help=not state.help, style_list=False)
    if ch == "l":
        return r(state, style_list=not state.style_list, help=False)
    if ch == "b":  # blend the current style with the model's next one, or stop blending
        n = state.style_counts[state.model]
        if n < 2:
            return state
        blend_index = (state.style_index + 1) % n if state.blend_index is None else None
        return r(state, blend_index=blend_index, mix=0.5, style_weights=None)
    if ch in "[]" and state.blend_index is not None:
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


def _style_number(state: PlayerState, ch: str) -> PlayerState:
    """A digit key: the style it completes (``state.digits`` + ``ch``, else ``ch`` alone), if there is one."""
    count = len(state.entries)
    for typed in (state.digits + ch, ch) if state.digits else (ch,):
        number = int(typed)
        if typed[0] != "0" and 1 <= number <= count:
            model, style_index = state.entries[number - 1]
            more = number * 10 <= count  # another digit could still follow
            return dataclasses.replace(state, model=model, style_index=style_index, blend_index=None,
                                       style_weights=None, digits=typed if more else "")
    return dataclasses.replace(state, digits="") if state.digits else state


# ---------------------------------------------------------------- capture
class CaptureThread:
    """Reads frames from ``cap`` in a thread.

    ``keep_latest=True`` (cameras, streams): only the newest frame is kept, so latency never
    grows when inference is slower than the camera. ``keep_latest=False`` (video files): every
    frame is delivered in order, reading one frame ahead; with ``pace`` (frames/s), a file is
    read at that rate instead and only its newest frame kept, as from a camera. ``loop``: a
    file starts over at its end (``cap.set``), for good.
    """

    def __init__(self, cap, keep_latest: bool, max_failures: int = 50, pace: float | None = None,
                 loop: bool = False):
        self._cap = cap
        self._live = keep_latest
        self._keep_latest = keep_latest or bool(pace)
        self._period = 1.0 / pace if pace else 0.0
        self._loop = loop and not keep_latest
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

    @property
    def wall_clock(self) -> bool:
        """Whether frames come at the source's own pace (a camera, a paced file), not as fast as they are read."""
        return self._keep_latest

    def _run(self) -> None:
        failures, read, rewound, t_first = 0, 0, False, 0.0
        try:
            while not self._stop.is_set():
                ok, frame = self._cap.read()
                if not ok or frame is None:
                    if self._loop and read and not rewound:  # a read right after a rewind failing: nothing to loop
                        self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        rewound = True
                        continue
                    failures += 1
                    if failures >= self._max_failures:
                        self.failed = self._live
                        break
                    time.sleep(0.02)
                    continue
                failures, rewound = 0, False
                if self._period:  # frame N is due N periods after the first
                    t_first = t_first or time.perf_counter()
                    self._stop.wait(t_first + read * self._period - time.perf_counter())
                read += 1
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
    """The run's figures. The pre-process, inference and post-process times (and ``stylize_fps``)
    are those of the ``stylized`` frames only: a frame shown as it came (space) is not stylizing."""

    frames: int = 0
    stylized: int = 0
    seconds: float = 0.0
    stop_reason: StopReason | None = None
    stages: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in STAGES})  # ms per frame
    latency: list[float] = field(default_factory=list)  # ms, frame read -> shown/written
    outputs: list[Path] = field(default_factory=list)
    virtual_camera: VirtualCameraStats | None = None
    window: bool = False  # a window was shown: the summary lists its keys

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
        if self.stylized < self.frames:
            lines.append(f"  {self.stylized} of the {self.frames} frames stylized (the pre-process, inference and "
                         f"post-process times are theirs); {self.frames - self.stylized} shown as they came")
        if self.virtual_camera:
            lines.append(self.virtual_camera.format())
        lines += [f"  wrote {p}" for p in self.outputs]
        if self.window:
            lines.append("keys: " + ", ".join(f"{k} {action}" for k, action in KEYS))
        return "\n".join(lines)


# ---------------------------------------------------------------- the loop
def _after_key(state: PlayerState, key: int, help_until: float | None, t_key: float):
    """``state`` after ``key``, with the timed parts: the start's key help goes after
    ``HELP_SECONDS`` unless a key toggled it, a typed style number after ``DIGIT_SECONDS``."""
    now = time.perf_counter()
    new = handle_key(state, key)
    if key >= 0:
        t_key = now
        if (new.help, new.style_list) != (state.help, state.style_list):
            help_until = None
    if help_until is not None and now > help_until:
        new, help_until = dataclasses.replace(new, help=False), None
    if new.digits and now - t_key > DIGIT_SECONDS:
        new = dataclasses.replace(new, digits="")
    return new, help_until, t_key


def draw_overlay(view: np.ndarray, state: PlayerState, name: str, fps: float, latency_ms: float,
                 scale: float = FONT_SCALE, style_names: list[str] = (), status: str | None = None) -> None:
    """The window's text on ``view``, in place: what plays, fps, the toggles that are on, a
    ``status`` line (a style learning beside the player), and the key help (``state.help``) or the
    numbered style list (``state.style_list``) below them."""
    toggles = {"original": state.show_original, "split": state.split, "colour": state.preserve_color,
               "mirror": state.mirror, "smooth": state.smooth, "REC": state.recording}
    flags = [f"strength {state.strength:.1f}"] + [name for name, on in toggles.items() if on]
    if state.digits:
        flags.append(f"style {state.digits}_")
    step = round(22 * scale / FONT_SCALE)
    lines = [f"{name}  {fps:.1f} fps  {latency_ms:.0f} ms", "  ".join(flags)] + ([status] if status else [])
    for i, text in enumerate(lines):
        draw_label(view, text, (round(8 * scale / FONT_SCALE), step * (i + 1)), scale)
    top = len(lines) * step + step // 2
    if state.help:
        draw_panel(view, list(KEYS), top, scale)
    elif state.style_list:
        current = state.entries.index((state.model, state.style_index))
        draw_panel(view, [(f"{'>' if i == current else ''}{i + 1}", n) for i, n in enumerate(style_names)], top, scale)


def check_display() -> None:
    """Raise UserError when no window can be opened (a Linux server without X or Wayland)."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UserError("no display to open a window on: play with the display off", setting="display")


def _timestamped(folder: Path, prefix: str, suffix: str) -> Path:
    return folder / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() // 1_000_000 % 1000:03d}{suffix}"


def style_names(models: list[StyleModel]) -> list[str]:
    """Every style of every model, in the order of ``PlayerState.entries``: the numbers the digits type."""
    return [m.name if len(m.style_names) == 1 else f"{m.name}/{style}" for m in models for style in m.style_names]


def run_player(models: list[StyleModel], cap, *, keep_latest: bool, width: int | None = 640,
               display: bool = True, max_frames: int | None = None, output: Path | None = None,
               record_dir: Path = Path("."), fps: float = 30.0, state: PlayerState | None = None,
               pace: bool = False, loop: bool = False, vcam: VirtualCamera | None = None,
               read_key: Callable[[], int] | None = None, live=None) -> PlayerSummary:
    """Stylize frames from ``cap`` until the source ends, ``max_frames``, 'q' or Ctrl-C.

    ``keep_latest``: see ``CaptureThread`` (True for cameras). ``width``: the processing width
    (None: the source's). ``output``: write every shown frame to this video (``fps`` frames/s;
    from a camera, each frame repeated or dropped so that the file plays at the speed it was seen).
    ``pace``: read a video file at ``fps``, as a camera would deliver it; ``loop``: play it over
    and over. ``vcam``: send it every frame shown, without the overlay; it is closed at the end.
    With ``display=False`` nothing is shown and no keys are read but ``read_key()``'s (called
    once a frame; -1: none). The caller owns ``cap``.
    ``live``: a model learning beside the player (``fastnst.play.live.LiveStyle``), called with each
    frame; a model it returns replaces the current one, and its ``status`` is an overlay line.
    """
    state = dataclasses.replace(state or PlayerState(), style_counts=tuple(len(m.style_names) for m in models))
    names = style_names(models)
    played, label = None, ""  # the state whose style weights the model has, and its overlay name
    summary = PlayerSummary(window=display)
    pipeline = FramePipeline()
    sink = VideoSink(output, fps) if output else None  # checks the output path before anything starts
    recorder: VideoSink | None = None
    capture: CaptureThread | None = None
    shown_fps, stop, window_seen, window_shape = 0.0, None, False, None
    mirrored = state.mirror  # of the previous frame: a flip breaks the smoothing history
    t_start = t_key = time.perf_counter()
    help_until = None  # when the key help shown at the start goes (None: the keys decide)
    try:
        if display:
            cv2.namedWindow(WINDOW, cv2.WINDOW_NORMAL | cv2.WINDOW_GUI_NORMAL)  # any size; no Qt toolbar
        capture = CaptureThread(cap, keep_latest, pace=fps if pace else None, loop=loop).start()
        t_start = t_key = time.perf_counter()
        if display and not state.help:
            state, help_until = dataclasses.replace(state, help=True), t_start + HELP_SECONDS
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
                state = dataclasses.replace(state, style_counts=tuple(len(m.style_names) for m in models),
                                            style_index=0, blend_index=None, style_weights=None)
                played = None
            model = models[state.model]
            if state.played != played:  # a new style or blend: set once, not per frame
                model.set_style(state.played_weights())
                played, label = state.played, model.label()
                pipeline.reset_smoothing()  # the history is another style's
            styled = small if state.show_original else pipeline.stylize(
                model, small, strength=state.strength, preserve_color=state.preserve_color,
                smooth=state.smooth)
            stylized = styled is not small  # not the original, nor strength 0
            view = cv2.hconcat([small, styled]) if state.split else styled
            t4 = time.perf_counter()
            t3 = t2 + (pipeline.inference_ms / 1000 if stylized else 0.0)  # then post-process, split view

            at = t_read if capture.wall_clock else None  # a camera's files follow the wall clock, a video's its frames
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
            if vcam:
                vcam.send(view)
            key = -1
            if display:
                _, _, ww, wh = cv2.getWindowImageRect(WINDOW)
                if view.shape != window_shape:  # the first frame at the frame's size; split: as wide, less tall
                    ww = ww if window_shape and ww > 0 else round(view.shape[1] * frame.shape[0] / view.shape[0])
                    wh = round(ww * view.shape[0] / view.shape[1])
                    cv2.resizeWindow(WINDOW, ww, wh)
                    window_shape = view.shape
                shown, scale = window_picture(view, (ww, wh))
                draw_overlay(shown, state, label, shown_fps, summary.latency[-1] if summary.latency else 0.0,
                             scale, names, live.status if live is not None else None)
                cv2.imshow(WINDOW, shown)
                key = cv2.waitKey(1)
                visible = cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) >= 1
                if window_seen and not visible:  # closed with the mouse (some backends map it late)
                    state = dataclasses.replace(state, quit=True)
                window_seen |= visible
            if key < 0 and read_key is not None:
                key = read_key()
            state, help_until, t_key = _after_key(state, key, help_until, t_key)
            t5 = time.perf_counter()

            stages = zip(STAGES, ((t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)))
            for name, (a, b) in stages:
                if stylized or name not in ("pre-process", "inference", "post-process"):
                    summary.stages[name].append((b - a) * 1000)
            summary.latency.append((t5 - t_read) * 1000)
            summary.frames += 1
            summary.stylized += stylized
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
        if vcam is not None:
            summary.virtual_camera = vcam.close()
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
