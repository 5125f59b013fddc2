"""Temporal stability: the warping-error metric (numpy/OpenCV) and the stability loss (torch)."""

import cv2
import numpy as np
import pytest

from fastnst.play.temporal import video_warping_error


def _textured(h=200, w=260, seed=0):
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 3)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)


def _panning(n=5, step=2):
    """A static textured scene seen by a camera that pans by ``step`` px per frame."""
    scene = _textured()
    return [np.ascontiguousarray(scene[20 - step * i : 180 - step * i, 20 + step * i : 220 + step * i]) for i in range(n)]


def test_translation_with_identity_model_is_near_zero():
    styl, inp = video_warping_error(_panning(), lambda f: f)
    assert styl < 0.5 and inp < 0.5


def test_error_grows_with_frame_to_frame_noise():
    rng = np.random.default_rng(1)
    frames = _panning()
    clean, _ = video_warping_error(frames, lambda f: f)
    noisy_fn = lambda f: np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8)  # noqa: E731
    noisy, inp = video_warping_error(frames, noisy_fn)
    assert noisy > clean + 5
    assert inp == pytest.approx(clean)


def test_needs_two_frames():
    with pytest.raises(ValueError):
        video_warping_error([_textured()], lambda f: f)


def test_stability_loss_zero_for_equivariant_positive_otherwise():
    torch = pytest.importorskip("torch")
    from fastnst.learn.losses import stability_loss

    x = torch.rand(2, 3, 48, 48)
    g = torch.Generator().manual_seed(0)
    pointwise = torch.sigmoid  # commutes with any translation
    assert stability_loss(pointwise, x, pointwise(x), noise_std=0.0, generator=g).item() == pytest.approx(0.0, abs=1e-12)

    # A position-dependent function is not translation-equivariant.
    ramp = torch.linspace(0, 1, 48).view(1, 1, 1, 48)
    fn = lambda t: t * ramp[..., : t.shape[-1]]  # noqa: E731
    assert stability_loss(fn, x, fn(x), noise_std=0.0, generator=g).item() > 1e-4
    # Noise alone makes even the identity inconsistent.
    assert stability_loss(lambda t: t, x, x, noise_std=0.05, generator=g).item() > 1e-4


def test_smoother_reduces_flicker_and_passes_first_frame_through():
    from fastnst.play.smoothing import TemporalSmoother

    rng = np.random.default_rng(2)
    frames = _panning(n=8)
    noisy = lambda f: np.clip(f + rng.normal(0, 12, f.shape), 0, 255).astype(np.uint8)  # noqa: E731
    raw, _ = video_warping_error(frames, noisy)
    smoother = TemporalSmoother()
    first = noisy(frames[0])
    assert np.array_equal(smoother(frames[0], first), first)
    smoother.reset()
    smoothed, _ = video_warping_error(frames, lambda f: smoother(f, noisy(f)))
    assert smoothed < 0.7 * raw


def test_flicker_ratios_of_a_still_video_are_not_a_division_by_zero():
    from fastnst.play.flicker import INPUT, SMOOTHED, STYLIZED, format_flicker

    still = format_flicker({INPUT: 0.0, STYLIZED: 0.0, SMOOTHED: 0.0})
    assert still.count("n/a") == 4  # each stylized line: against the input and the unsmoothed
    moving = format_flicker({INPUT: 2.0, STYLIZED: 1.0, SMOOTHED: 0.5})
    assert "0.50x input, 1.00x unsmoothed" in moving and "0.25x input, 0.50x unsmoothed" in moving
