"""Training data: a folder of photos, a video file, a camera or a Hugging Face dataset, through the
`datasets` library. ``BUILTIN_PHOTOS`` is the small photo set shipped with the package.

Both sources become a torch Dataset of (3, S, S) float RGB crops in [0, 1] (random resized
crop + horizontal flip). Unreadable, corrupt, truncated or tiny images are skipped (the next
image takes their place) and reported back with the batch, so the caller can count them.

For a folder, order and augmentation are pure functions of (seed, sample number), never of a
worker's RNG: sample ``k`` of the run is image ``perm(epoch)[k % N]`` with ``epoch = k // N``,
cropped with a generator seeded by (seed, k). So the data position is one integer (samples
drawn so far), resume is exact whatever the number of workers, and DDP rank ``r`` of ``w``
draws the samples ``k = j * w + r`` (distinct shards, one permutation). A streamed hub
dataset is sharded by example and resumes by skipping (see StreamDataset).
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from fastnst import UserError
from fastnst.play.images import list_images, to_rgb

log = logging.getLogger(__name__)

CROP_SCALE = (0.25, 1.0)  # fraction of the image area a random crop keeps
CROP_RATIO = (3 / 4, 4 / 3)
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")  # user/name
# Permissively licensed photos shipped with the package (their sources: SOURCES.md beside them).
BUILTIN_PHOTOS = Path(__file__).resolve().parent / "photos"
VIDEO_FRAMES = 200  # frames sampled evenly from a video: neighbours differ little, more adds little
CAMERA_FRAMES, CAMERA_EVERY = 60, 4  # a camera: every 4th frame, so neighbours differ


def open_dataset(data: str, split: str = "train", holdout: int = 0,
                 extra: tuple[str, ...] = ()) -> tuple[Any, list[Any]]:
    """``data`` -> (dataset, held-out items). The last ``holdout`` items are kept out of training
    (the preview image); every image of the ``extra`` folders is trained on as well.

    A local folder (searched recursively) gives a ``datasets.Dataset`` with one column "image"
    of file paths. A video file or a camera index ("0") gives frames sampled evenly through it
    (``video_frames``), held out from its end. A Hugging Face id (``user/name``, when no such
    folder exists) gives a streamed ``datasets.IterableDataset`` (nothing is downloaded beyond
    the images used) with its first image column as "image", undecoded ({"bytes", "path"}).
    """
    import datasets

    folder = Path(data).expanduser()
    if not folder.exists() and HUB_ID.match(data):
        stream = _open_hub(data, split)
        if extra:
            raise UserError("extra data folders go with a data folder, not a Hugging Face dataset")
        held = list(stream.take(holdout))
        return stream.skip(holdout), [x["image"] for x in held]
    if folder.is_file() or (not folder.exists() and data.isdigit()):
        files = video_frames(data)
    elif not folder.is_dir():
        raise UserError(f"data folder not found: {data}")
    else:
        files = [str(p) for p in list_images(folder)]
    if not files:
        raise UserError(f"data folder has no images (jpg, jpeg, png, webp, bmp): {data}")
    holdout = min(holdout, len(files) - 1)
    train_files = files[: len(files) - holdout]
    for folder in extra:
        more = list_images(folder) if Path(folder).is_dir() else []
        if not more:
            raise UserError(f"extra data folder not found or without images: {folder}")
        train_files += [str(p) for p in more]
    if any(isinstance(f, dict) for f in train_files):  # one column type: frames are {"bytes", "path"}
        train_files = [f if isinstance(f, dict) else {"bytes": None, "path": f} for f in train_files]
    return datasets.Dataset.from_dict({"image": train_files}), files[len(files) - holdout:]


def video_frames(source: str, frames: int | None = None) -> list[dict[str, Any]]:
    """``frames`` frames of a video file, evenly spaced from its first to its last (default
    VIDEO_FRAMES), or of a camera index, every CAMERA_EVERY-th (default CAMERA_FRAMES), as
    in-memory JPEGs {"bytes", "path": "SOURCE#frame"} in time order."""
    import cv2

    from fastnst.play.video import camera_index, frame_count, is_video_path, open_capture

    camera = camera_index(source)
    if camera is None and not is_video_path(source):
        raise UserError(f"data source {source}: not a folder of photos, a video file or a camera index")
    cap = open_capture(source)
    try:
        if camera is None:
            total = frame_count(source)
            wanted = set(np.linspace(0, max(total - 1, 0), frames or VIDEO_FRAMES).round().astype(int).tolist())
        else:
            total = (frames or CAMERA_FRAMES) * CAMERA_EVERY
            wanted = set(range(0, total, CAMERA_EVERY))
        out = []
        for i in range(total):  # read in order: seeking is slow or inexact in many codecs
            if not cap.grab():
                break
            if i in wanted:
                ok, frame = cap.retrieve()
                ok = ok and (jpeg := cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 95]))[0]
                if ok:
                    out.append({"bytes": jpeg[1].tobytes(), "path": f"{source}#{i}"})
    finally:
        cap.release()
    if not out:
        raise UserError(f"cannot read any frame from {source}")
    log.info("%d frames of %s", len(out), source)
    return out


def _open_hub(name: str, split: str) -> Any:
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    except Exception as e:  # offline, no such dataset or split, private: all mean "cannot use it"
        raise UserError(f"no data folder {name!r}, and cannot open it as a Hugging Face dataset "
                        f"(split {split!r}): {type(e).__name__}: {e}") from None
    cols = [c for c, f in (ds.features or {}).items() if isinstance(f, datasets.Image)]
    if not cols:
        raise UserError(f"dataset {name!r} has no image column")
    return ds.select_columns([cols[0]]).rename_column(cols[0], "image").cast_column("image", datasets.Image(decode=False))


def decode_image(item: Any, min_side: int, draft: int | None = None) -> Image.Image | None:
    """A path or {"bytes", "path"} -> RGB image, or None if unreadable, corrupt or tiny
    (short side < ``min_side``). ``draft``: JPEGs may decode at a reduced scale (a power of two),
    keeping both sides >= ``draft``, which is much faster for large photos."""
    try:
        if isinstance(item, dict):
            src = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
        else:
            src = item
        with Image.open(src) as img:
            if draft:
                img.draft("RGB", (draft, draft))
            img.load()
            img = to_rgb(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, TypeError, KeyError):
        return None
    return None if min(img.size) < min_side else img


def item_name(item: Any) -> str:
    return str(item.get("path") or "<bytes>") if isinstance(item, dict) else str(item)


def random_resized_crop(img: Image.Image, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop (area in CROP_SCALE, aspect in CROP_RATIO) resized to size x size,
    flipped left-right with p=0.5 -> (size, size, 3) uint8."""
    w, h = img.size
    for _ in range(10):
        area = w * h * rng.uniform(*CROP_SCALE)
        ratio = math.exp(rng.uniform(math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            break
    else:  # fall back to the largest centred square
        cw = ch = min(w, h)
    x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    crop = img.resize((size, size), Image.Resampling.BILINEAR, box=(x, y, x + cw, y + ch))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.array(crop)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    rgb = np.require(rgb, requirements=["C", "W"])  # copies read-only arrays (from PIL), which torch warns on
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255.0)


class CropDataset(torch.utils.data.Dataset):
    """Map-style dataset indexed by sample number k (0, 1, 2, ... across epochs).

    ``self[k]`` -> (crop (3, S, S), [names of images skipped on the way]). An image that
    fails to decode is replaced by the next one in the epoch's permutation.
    """

    def __init__(self, source: Any, image_size: int, seed: int):
        self.source, self.size, self.seed = source, image_size, seed
        self.min_side = max(8, image_size // 2)
        self.n = len(source)
        self._perm: tuple[int, np.ndarray] | None = None  # (epoch, permutation) cache, per worker

    def __len__(self) -> int:
        return self.n

    def permutation(self, epoch: int) -> np.ndarray:
        if self._perm is None or self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._perm[1]

    def __getitem__(self, k: int) -> tuple[torch.Tensor, list[str]]:
        epoch, pos = divmod(int(k), self.n)
        perm = self.permutation(epoch)
        skipped = []
        for i in range(self.n):
            item = self.source[int(perm[(pos + i) % self.n])]["image"]
            img = decode_image(item, self.min_side, draft=2 * self.size)  # a half-side crop keeps full detail
            if img is not None:
                rng = np.random.default_rng([self.seed, int(k), 1])
                return to_tensor(random_resized_crop(img, self.size, rng)), skipped
            skipped.append(item_name(item))
        raise UserError(f"none of the {self.n} training images can be read (need a short side >= {self.min_side} px)")


class SampleNumbers(torch.utils.data.Sampler):
    """Sample numbers ``start*world + rank, (start+1)*world + rank, ...`` for ``count`` draws."""

    def __init__(self, start: int, count: int, rank: int = 0, world: int = 1):
        self.start, self.count, self.rank, self.world = start, count, rank, world

    def __iter__(self) -> Iterator[int]:
        return iter(range((self.start) * self.world + self.rank, (self.start + self.count) * self.world, self.world))

    def __len__(self) -> int:
        return self.count


def collate(batch: list[tuple[torch.Tensor, list[str]]]) -> tuple[torch.Tensor, list[str]]:
    """-> ((B, 3, S, S) batch, names of skipped images)."""
    return torch.stack([x for x, _ in batch]), [name for _, names in batch for name in names]


class StreamDataset(torch.utils.data.IterableDataset):
    """A streamed hub dataset as endless (crop, skipped names) pairs, for one rank.

    Rank r of w, worker i of n reads every (w*n)-th example from offset r*n + i of a seeded
    shuffle (``datasets.distributed.split_dataset_by_node``). Resume skips as many examples as
    this rank drew crops, in the first pass: it is positionally exact only with ``workers=0``,
    no unreadable example before the checkpoint, and within the first pass over the stream
    (otherwise it continues from a nearby position; the crops stay a fresh random stream).
    """

    def __init__(self, stream: Any, image_size: int, seed: int, start: int = 0, rank: int = 0, world: int = 1):
        self.stream, self.size, self.seed = stream, image_size, seed
        self.start, self.rank, self.world = start, rank, world
        self.min_side = max(8, image_size // 2)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, list[str]]]:
        from datasets.distributed import split_dataset_by_node

        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        shard = split_dataset_by_node(self.stream.shuffle(seed=self.seed, buffer_size=1000),
                                      rank=self.rank * nw + wid, world_size=self.world * nw)
        k, skipped, epoch = self.start // nw, [], 0  # k: examples this worker has drawn
        while True:
            shard.set_epoch(epoch)
            for ex in shard.skip(k) if epoch == 0 else shard:
                img = decode_image(ex["image"], self.min_side, draft=2 * self.size)
                if img is None:
                    skipped.append(item_name(ex["image"]))
                    continue
                rng = np.random.default_rng([self.seed, self.rank, wid, k, 1])
                k += 1
                yield to_tensor(random_resized_crop(img, self.size, rng)), skipped
                skipped = []
            epoch += 1


def make_loader(source: Any, image_size: int, seed: int, batch_size: int, start_sample: int, num_samples: int,
                rank: int = 0, world: int = 1, workers: int = 0) -> torch.utils.data.DataLoader:
    """A DataLoader of ((B, 3, S, S) crops, skipped names) over this rank's samples
    ``start_sample .. start_sample + num_samples`` (counted per rank)."""
    common = dict(batch_size=batch_size, num_workers=workers, collate_fn=collate, worker_init_fn=ignore_sigint,
                  prefetch_factor=2 if workers else None)
    if isinstance(source, torch.utils.data.IterableDataset) or not hasattr(source, "__len__"):
        return torch.utils.data.DataLoader(StreamDataset(source, image_size, seed, start_sample, rank, world), **common)
    sampler = SampleNumbers(start_sample, num_samples, rank, world)
    return torch.utils.data.DataLoader(CropDataset(source, image_size, seed), sampler=sampler, **common)


def ignore_sigint(worker_id: int) -> None:
    """DataLoader worker_init_fn: Ctrl-C (and a SIGTERM sent to the whole process group, as
    `timeout` does) goes to the main process only, which stops the loop after the current step
    and checkpoints; the workers must survive until then (they exit with their parent)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
