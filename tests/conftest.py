"""Shared fixtures: a tiny ONNX style model and small synthetic videos, all built by the tests."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# The tests that `python -m pytest -q` leaves out and `-m ''` runs (pyproject's `slow` marker): each
# took over 2.5 s on 2 busy cores, or runs a subprocess, a signal or several processes. Listed
# here by file, as `name` or `name[params]`, so that the marks live in one place.
SLOW = {
    "test_train.py": (
        "test_two_process_gloo_ddp_ends_with_identical_weights",  # torchrun-style DDP, two processes
        "test_ctrl_c_or_sigterm_saves_a_checkpoint_and_exits_128_plus_the_signal",  # signals
        "test_distillation_pulls_the_net_towards_the_teacher",
        "test_training_lowers_the_loss_and_writes_the_run_folder",
        "test_resume_is_exact",
        "test_export_cli_round_trips_a_checkpoint",
        "test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint",
        "test_resume_refuses_to_change_the_run_but_not_the_machine",
    ),
    "test_faults.py": (
        "test_d11_sigterm_finishes_the_video_and_leaves_no_temp",  # a subprocess and a signal
        "test_d6_torch_commands_on_the_base_install_say_what_to_install",  # subprocesses
        "test_d14_ffmpeg_and_opencv_messages_do_not_leak",
        "test_d5_real_full_disk",
        "test_stale_checkpoint_temp_is_removed_by_the_next_run",
    ),
    "test_torch_free.py": (  # each runs a command in a subprocess with torch blocked
        "test_block_works", "test_stylize", "test_stylize_style_and_sheet", "test_webcam_headless",
        "test_bench", "test_models", "test_eval_video",
    ),
    "test_optimize.py": (
        "test_cli_preserve_color_histogram_keeps_the_photo_palette",
        "test_every_lbfgs_iteration_is_an_update",
        "test_a_few_iterations_lower_the_loss",
        "test_coarse_to_fine_scales_and_noise_init",
        "test_preserve_color_luminance_keeps_the_photo_chroma_in_the_result_and_every_snapshot",
        "test_seeded_runs_are_repeatable",
        "test_cli_writes_output_snapshots_and_loss_summary",
    ),
    "test_multistyle.py": (
        "test_add_style_trains_only_the_new_style",
        "test_export_keeps_renames_and_reorders_styles_bit_identically",
        "test_add_style_to_an_exported_model_without_its_paintings",
        "test_tune_style_retrains_one_style_from_where_it_was",
        "test_two_styles_train_balanced_and_log_each",
    ),
    "test_export.py": (
        "test_export_calibrate_takes_the_int8_calibration_photos_from_the_given_folder",
        "test_float_export_matches_eager_within_1e4",
        "test_multi_style_onnx_matches_torch_for_one_hot_and_blended_weights",
    ),
    "test_nets.py": (
        "test_onnx_with_folded_io_matches_the_plain_net[fast-changes4]",
        "test_onnx_with_folded_io_matches_the_plain_net[johnson-changes3]",
    ),
    "test_player.py": ("test_unplugged_camera_stops_with_summary_and_a_recording_at_the_speed_seen",),
    "test_add_style.py": (
        "test_add_style_to_a_model_without_data_trains_on_the_built_in_photos",
        "test_webcam_learn_plays_the_nearest_style_then_swaps_in_the_new_one_headless",  # a learner process
    ),
    "test_shipped_models.py": ("test_shipped_model_reads_back_as_a_base_for_add_style",),
    "test_precision.py": ("test_bf16_training_runs_vgg_in_bf16_and_the_transform_net_in_fp32",),
    "test_eval.py": ("test_gatys_reference_row",),
    "test_web.py": (  # headless Chromium, or a `serve` subprocess
        "test_page_plays_the_camera_stylized", "test_style_switch_and_blend", "test_parity_with_the_python_player",
        "test_snapshot_and_record", "test_dropped_text_file", "test_model_with_another_contract",
        "test_own_model_by_drop", "test_missing_model_url", "test_camera_refused_offers_a_file",
        "test_static_export_plays_single_threaded", "test_serve_command_torch_free",
    ),
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        names = SLOW.get(item.path.name, ())
        if item.name in names or getattr(item, "originalname", None) in names:
            item.add_marker(pytest.mark.slow)
    # A renamed test would silently join the quick suite: a name here must still be a test.
    for module in {item.module for item in items if item.path.name in SLOW and hasattr(item, "module")}:
        stale = [n for n in SLOW[Path(module.__file__).name] if not hasattr(module, n.split("[")[0])]
        if stale:
            raise pytest.UsageError(f"tests/conftest.py SLOW names tests that {module.__name__} no longer has: {stale}")


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory) -> Path:
    """A tiny TransformNet (channels (4, 8, 8), one residual block) exported with the fastnst contract.

    Needs torch to build; without it, only the tests that use this fixture skip.
    """
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from fastnst.config import NetConfig
    from fastnst.learn.export import export_onnx
    from fastnst.learn.nets import TransformNet

    torch.manual_seed(0)
    net = TransformNet(NetConfig(channels=(4, 8, 8), res_blocks=1))
    return export_onnx(net, tmp_path_factory.mktemp("models") / "tiny.onnx", {"fastnst.style": "tiny"})


@pytest.fixture(scope="session")
def trio_onnx(tmp_path_factory) -> Path:
    """A tiny three-style model ``trio`` (styles a, b, c), each style's norm parameters perturbed so the styles differ."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from fastnst.config import NetConfig
    from fastnst.learn.export import export_onnx
    from fastnst.learn.nets import TransformNet

    torch.manual_seed(0)
    net = TransformNet(dataclasses.replace(NetConfig(channels=(4, 8, 8), res_blocks=1), styles=3)).eval()
    with torch.no_grad():
        for norm in net.norms():
            norm.weight.add_(torch.randn_like(norm.weight))
            norm.bias.add_(torch.randn_like(norm.bias))
    return export_onnx(net, tmp_path_factory.mktemp("models") / "trio.onnx",
                       {"fastnst.style": "trio", "fastnst.styles": json.dumps(["a", "b", "c"])})


def synthetic_frames(n: int, size: tuple[int, int] = (64, 48)) -> list[np.ndarray]:
    """``n`` (h, w, 3) uint8 BGR frames: a colour gradient with a square moving across."""
    w, h = size
    xs, ys = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    base = np.dstack([xs, ys, 255 - xs]).astype(np.uint8)  # (h, w, 3)
    frames = []
    for i in range(n):
        f = base.copy()
        x = (i * 4) % max(1, w - 12)
        f[h // 3: h // 3 + 12, x: x + 12] = (255, 255, 255)
        frames.append(f)
    return frames


def write_video(path: Path, n: int, size: tuple[int, int] = (64, 48), fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    assert writer.isOpened(), "OpenCV cannot write mp4v here"
    for f in synthetic_frames(n, size):
        writer.write(f)
    writer.release()
    return path


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    """All frames of a video, and its fps."""
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot open {path}"
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    cap.release()
    return frames, fps


@pytest.fixture
def synthetic_video(tmp_path) -> Path:
    """A 12-frame 64x48 mp4 at 10 fps."""
    return write_video(tmp_path / "clip.mp4", 12)


def wait_for(predicate, seconds: float = 120.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``seconds`` pass (False)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False
