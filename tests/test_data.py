"""Training data: folder discovery, skipping unreadable images, crops, deterministic shards."""

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import UserError
from fastnst.learn.data import CropDataset, SampleNumbers, StreamDataset, make_loader, open_dataset


def write_images(folder, n, size=(48, 40), seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"img{i}.png")


@pytest.fixture
def messy(tmp_path):
    """Two class folders of good images, plus a corrupt JPEG, a text file named .jpg, a truncated
    PNG, a tiny image and a plain text file."""
    root = tmp_path / "data"
    write_images(root / "a", 3)
    write_images(root / "b" / "deeper", 2, seed=1)
    (root / "a" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 50)
    (root / "b" / "notes.jpg").write_text("not an image")
    good = (root / "a" / "img0.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(good[: len(good) // 2])
    Image.new("RGB", (6, 6)).save(root / "b" / "tiny.png")
    (root / "README.txt").write_text("ignored: not an image suffix")
    return root


def test_folder_is_searched_recursively_and_last_image_held_out(messy):
    source, held = open_dataset(str(messy), holdout=1)
    names = [p.split("/")[-1] for p in source["image"]]
    assert len(names) == 8 and "README.txt" not in names and len(held) == 1
    assert held[0] not in source["image"]


@pytest.mark.parametrize("make", ["missing", "empty", "text-only"])
def test_missing_or_empty_folder_is_a_user_error(tmp_path, make):
    folder = tmp_path / "d"
    if make != "missing":
        folder.mkdir()
    if make == "text-only":
        (folder / "a.txt").write_text("x")
    with pytest.raises(UserError, match="data folder"):
        open_dataset(str(folder))


def test_unreadable_and_tiny_images_are_skipped_and_named(messy):
    source, _ = open_dataset(str(messy))
    ds = CropDataset(source, image_size=32, seed=0)
    skipped = set()
    for k in range(len(ds)):  # one epoch
        x, bad = ds[k]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
        skipped.update(p.split("/")[-1] for p in bad)
    assert skipped == {"corrupt.jpg", "notes.jpg", "truncated.png", "tiny.png"}


def test_samples_are_deterministic_and_ranks_disjoint(tmp_path):
    write_images(tmp_path / "d", 8)
    source, _ = open_dataset(str(tmp_path / "d"))
    ds = CropDataset(source, image_size=32, seed=3)
    assert torch.equal(ds[5][0], CropDataset(source, image_size=32, seed=3)[5][0])
    assert not torch.equal(ds[5][0], CropDataset(source, image_size=32, seed=4)[5][0])
    r0, r1 = list(SampleNumbers(2, 4, 0, 2)), list(SampleNumbers(2, 4, 1, 2))
    assert r0 == [4, 6, 8, 10] and r1 == [5, 7, 9, 11]
    # a loader started mid-way yields exactly the tail of a loader started at 0
    full = [b for b, _ in make_loader(source, 32, 3, batch_size=2, start_sample=0, num_samples=6)]
    tail = [b for b, _ in make_loader(source, 32, 3, batch_size=2, start_sample=2, num_samples=4, workers=1)]
    assert len(full) == 3 and all(torch.equal(a, b) for a, b in zip(full[1:], tail))


def test_two_ranks_see_every_image_exactly_once_per_epoch(tmp_path):
    """8 solid-colour images, 2 ranks, 4 samples each: the crops' colours name the images drawn."""
    folder = tmp_path / "d"
    folder.mkdir()
    for i in range(8):  # grey level 20 * (i + 1): one per image, kept by any resize or crop of it
        Image.new("RGB", (48, 40), (20 * (i + 1),) * 3).save(folder / f"img{i}.png")
    source, _ = open_dataset(str(folder))
    ds = CropDataset(source, image_size=32, seed=3)

    def images_of(rank, epoch=0):
        crops = [ds[k][0] for k in SampleNumbers(epoch * 4, 4, rank, 2)]  # (3, 32, 32) each, 0..1
        return [round(float(c.mean()) * 255 / 20) - 1 for c in crops]

    r0, r1 = images_of(0), images_of(1)
    assert sorted(r0 + r1) == list(range(8)), (r0, r1)  # each image once: no rank repeats another's
    assert sorted(images_of(0, 1) + images_of(1, 1)) == list(range(8))  # and again in the next epoch
    assert images_of(0, 1) != r0  # reshuffled per epoch


def test_streamed_dataset_yields_crops(tmp_path):
    datasets = pytest.importorskip("datasets")
    write_images(tmp_path / "d", 4)
    stream = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "d"), split="train", streaming=True)
    stream = stream.cast_column("image", datasets.Image(decode=False))
    it = iter(StreamDataset(stream, image_size=32, seed=0))
    crops = [next(it)[0] for _ in range(6)]  # more than one pass
    assert all(c.shape == (3, 32, 32) for c in crops)


def test_hub_id_offline_is_a_clear_user_error(monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="Hugging Face"):
        open_dataset("nobody-xyz/no-such-dataset", "train")
