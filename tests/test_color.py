"""Colour preservation: luminance-only transfer and colour statistics matching (numpy + cv2)."""

import cv2
import numpy as np
import pytest

from fastnst.play.color import luminance_transfer, match_histogram


def _smooth_image(seed: int, h: int = 48, w: int = 64) -> np.ndarray:
    """A (H, W, 3) uint8 RGB image with gradients and blobs, values kept away from 0 and 255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    chans = [
        128 + 60 * np.sin(xx / rng.uniform(4, 12) + rng.uniform(0, 6)) * np.cos(yy / rng.uniform(4, 12))
        for _ in range(3)
    ]
    return np.clip(np.stack(chans, axis=2), 20, 235).astype(np.uint8)


def test_luminance_transfer_keeps_original_chroma_and_stylized_luma():
    stylized, original = _smooth_image(0), _smooth_image(1)
    out = luminance_transfer(stylized, original)
    ycc_out = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb).astype(int)
    ycc_orig = cv2.cvtColor(original, cv2.COLOR_RGB2YCrCb).astype(int)
    ycc_sty = cv2.cvtColor(stylized, cv2.COLOR_RGB2YCrCb).astype(int)
    # chroma (Cr, Cb) from the original, luminance (Y) from the stylized, up to uint8 rounding
    assert np.abs(ycc_out[..., 1:] - ycc_orig[..., 1:]).mean() < 1.0
    assert np.abs(ycc_out[..., 0] - ycc_sty[..., 0]).mean() < 1.0
    # and it is neither input
    assert np.abs(out.astype(int) - stylized).mean() > 10
    assert np.abs(out.astype(int) - original).mean() > 10


def test_luminance_transfer_bgr_order_and_out_buffer():
    stylized, original = _smooth_image(2), _smooth_image(3)
    before = stylized.copy(), original.copy()
    rgb = luminance_transfer(stylized, original, order="rgb")
    buf = np.zeros_like(stylized)
    bgr = luminance_transfer(stylized[..., ::-1].copy(), original[..., ::-1].copy(), order="bgr", out=buf)
    assert bgr is buf
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)
    np.testing.assert_array_equal(stylized, before[0])  # inputs untouched
    np.testing.assert_array_equal(original, before[1])


def test_luminance_transfer_rejects_bad_input():
    img = _smooth_image(0)
    with pytest.raises(ValueError, match="order"):
        luminance_transfer(img, img, order="yuv")
    with pytest.raises(ValueError, match="shape"):
        luminance_transfer(img, img[:32])
    with pytest.raises(ValueError, match="uint8"):
        luminance_transfer(img.astype(np.float32), img)


def test_match_histogram_maps_mean_and_covariance():
    rng = np.random.default_rng(0)
    # image: correlated channels around grey; reference: a different mean and covariance, other size
    base = rng.normal(0, 1, (64 * 48, 3))
    image = np.clip(128 + base @ np.array([[30, 10, 0], [0, 20, 5], [0, 0, 15]]), 0, 255)
    ref = np.clip(np.array([90, 140, 100]) + rng.normal(0, 1, (40 * 40, 3)) @ np.array([[25, 0, 8], [5, 18, 0], [0, 4, 12]]), 0, 255)
    image = image.reshape(64, 48, 3).astype(np.uint8)
    ref = ref.reshape(40, 40, 3).astype(np.uint8)

    out = match_histogram(image, ref)
    assert out.shape == image.shape and out.dtype == np.uint8
    o, r = out.reshape(-1, 3).astype(np.float64), ref.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(o.mean(0), r.mean(0), atol=1.0)
    np.testing.assert_allclose(np.cov(o, rowvar=False), np.cov(r, rowvar=False), rtol=0.05, atol=5.0)
    # the input's statistics were clearly different before
    assert np.abs(image.reshape(-1, 3).mean(0) - r.mean(0)).max() > 20


def test_match_histogram_of_flat_image_is_finite():
    flat = np.full((8, 8, 3), 100, np.uint8)  # zero covariance
    out = match_histogram(flat, _smooth_image(0))
    assert out.dtype == np.uint8 and np.isfinite(out.astype(float)).all()
