"""Image files <-> uint8 RGB arrays (Pillow + numpy only; the player path uses this too)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from fastnst import UserError
from fastnst.play.files import atomic_path, check_output_path

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
OUTPUT_IMAGE_SUFFIXES = IMAGE_SUFFIXES + (".tif", ".tiff")
# The longest side each format can store (WebP's 14-bit sizes; libjpeg's JPEG_MAX_DIMENSION).
MAX_SIDE = {".webp": 16383, ".jpg": 65500, ".jpeg": 65500}


def check_image_side(path: str | os.PathLike, long_side: int) -> None:
    """UserError if an image with long side ``long_side`` cannot be stored in ``path``'s format."""
    suffix = Path(path).suffix.lower()
    if long_side > MAX_SIDE.get(suffix, long_side):
        raise UserError(f"output {path}: {suffix[1:].upper()} images are at most {MAX_SIDE[suffix]} px a side, this "
                        f"one would be {long_side} px; use .png or a smaller size")


def image_side(path: str | os.PathLike) -> int | None:
    """An image file's long side from its header (None if unreadable: loading it says why)."""
    try:
        with Image.open(path) as img:
            return max(img.size)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode (L, P, RGBA, CMYK, 16-bit) -> 8-bit RGB, EXIF orientation applied, and
    transparency composited onto white (not the colours hidden under it)."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # Pillow's convert() clips 16-bit values to 255 instead of scaling them. Mode I may hold
        # 8-bit values (some TIFFs), so only there the range decides.
        arr = np.asarray(img, dtype=np.float32)
        scale = 257.0 if img.mode != "I" or arr.max() > 255 else 1.0
        img = Image.fromarray(np.clip(arr / scale + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img.convert("RGBA"))
    return img.convert("RGB")


def load_image(path: str | os.PathLike, max_size: int | None = None, what: str = "image") -> np.ndarray:
    """Read an image file as a (H, W, 3) uint8 RGB array.

    ``max_size`` caps the long side (downscaling with a log message). ``what`` names the
    image in error messages ("content image", "style image").
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()
            img = to_rgb(img)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UserError(f"cannot read {what} {path}: not an image, or corrupt ({e})") from None
    if max_size and max(img.size) > max_size:
        old = img.size
        img = resize_long_side(img, max_size)
        log.info("%s %s is %dx%d; downscaled to %dx%d (max size %d)", what, path.name, *old, *img.size, max_size)
    return np.asarray(img)


def resize_long_side(img: Image.Image, size: int) -> Image.Image:
    """Resize so the long side is ``size`` pixels, keeping the aspect ratio."""
    w, h = img.size
    s = size / max(w, h)
    return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def save_image(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a (H, W, 3) uint8 RGB array atomically; the format follows the extension."""
    path = check_output_path(path, OUTPUT_IMAGE_SUFFIXES, what="image")
    check_image_side(path, max(rgb.shape[:2]))
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format=Image.registered_extensions()[path.suffix.lower()])
    return path


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files under ``folder``, recursively, sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
