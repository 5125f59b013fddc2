"""Colour preservation (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style
Transfer"), numpy + OpenCV only: no torch, so the player can call it on every frame.

- ``luminance_transfer``: keep the stylized image's luminance and the original's colours.
- ``match_histogram``: move an image's colour mean and covariance onto a reference's.
"""

from __future__ import annotations

import cv2
import numpy as np

# OpenCV conversion codes: order -> (to YCrCb, back).
_YCRCB = {
    "rgb": (cv2.COLOR_RGB2YCrCb, cv2.COLOR_YCrCb2RGB),
    "bgr": (cv2.COLOR_BGR2YCrCb, cv2.COLOR_YCrCb2BGR),
}


def _check_uint8_image(img: np.ndarray, name: str) -> None:
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{name} must be a (H, W, 3) uint8 image, got {img.dtype} {img.shape}")


def luminance_transfer(
    stylized: np.ndarray, original: np.ndarray, order: str = "rgb", out: np.ndarray | None = None
) -> np.ndarray:
    """(H, W, 3) uint8 image with ``stylized``'s luminance (Y of YCrCb) and ``original``'s chroma.

    ``order`` is the channel order of both inputs and the output: "rgb", or "bgr" for OpenCV
    frames. ``out`` (optional, same shape and dtype) receives the result, so a video loop can
    reuse one buffer; the inputs are not modified.
    """
    if order not in _YCRCB:
        raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
    _check_uint8_image(stylized, "stylized")
    _check_uint8_image(original, "original")
    if stylized.shape != original.shape:
        raise ValueError(f"stylized {stylized.shape} and original {original.shape} differ in shape")
    to_ycc, from_ycc = _YCRCB[order]
    ycc = cv2.cvtColor(original, to_ycc)  # (H, W, 3): Y, Cr, Cb of the original
    y = cv2.cvtColor(stylized, to_ycc)  # (H, W, 3); only Y is used
    cv2.mixChannels([y], [ycc], [0, 0])  # ycc[..., 0] = y[..., 0], without a temporary
    return cv2.cvtColor(ycc, from_ycc, dst=out)


def match_histogram(image: np.ndarray, reference: np.ndarray, eps: float = 1.0) -> np.ndarray:
    """``image`` with its colours moved onto ``reference``'s mean and covariance (uint8, (H, W, 3)).

    The linear map x' = A (x - mu_i) + mu_r with A = Cov_r^1/2 Cov_i^-1/2 (symmetric square
    roots), the "Image Analogies" colour transfer used by Gatys et al. 2017 §3.1. Works in any
    channel order as long as both images share it; the sizes may differ.
    """
    _check_uint8_image(image, "image")
    _check_uint8_image(reference, "reference")
    x = image.reshape(-1, 3).astype(np.float32)  # (N, 3)
    r = reference.reshape(-1, 3).astype(np.float32)  # (M, 3)
    mu_x, mu_r = x.mean(0), r.mean(0)  # (3,)
    cov_x = np.cov(x, rowvar=False, bias=True) + eps * np.eye(3)  # (3, 3)
    cov_r = np.cov(r, rowvar=False, bias=True) + eps * np.eye(3)
    a = _sqrtm_sym(cov_r) @ np.linalg.inv(_sqrtm_sym(cov_x))  # (3, 3)
    x -= mu_x
    out = x @ a.T.astype(np.float32)  # (N, 3)
    out += mu_r
    return np.clip(out, 0, 255).round().astype(np.uint8).reshape(image.shape)


def _sqrtm_sym(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite (3, 3) matrix."""
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
