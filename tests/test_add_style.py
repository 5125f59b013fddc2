"""Adding a painting from the painting alone: photos from a video or the built-in set, and a new
style that starts from its nearest trained style."""

import re
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import photos_and_paintings
from fastnst import cli
from fastnst.config import LossConfig, NetConfig, TrainConfig
from fastnst.learn import data as data_mod
from fastnst.learn.addstyle import start_new_styles, style_losses
from fastnst.learn.checkpoint import config_of, load_checkpoint
from fastnst.learn.data import BUILTIN_PHOTOS, open_dataset, to_tensor
from fastnst.learn.losses import PerceptualLoss
from fastnst.learn.nets import TransformNet
from fastnst.learn.train import train

TINY = NetConfig(channels=(4, 8, 8), res_blocks=1)
TINY_LOSS = LossConfig(vgg="random", content_layers=("relu2_1",), style_layers={"relu1_1": 1.0, "relu2_1": 1.0},
                       style_weight=10.0)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def base_model(tmp_path):
    """A tiny two-style model exported by a 2-step run, and a third painting to add."""
    photos, (red, blue, green) = photos_and_paintings(tmp_path, 4)
    cfg = TrainConfig(style_paths=(red, blue), data=str(photos), image_size=32, style_size=40, batch_size=2, steps=2,
                      workers=0, preview_every=0, holdout=1, device="cpu", run_dir=str(tmp_path / "base"),
                      net=replace(TINY, n_styles=2), loss=TINY_LOSS)
    model = train(cfg).onnx
    return model, green


@pytest.mark.slow
def test_add_style_to_a_model_without_data_trains_on_the_built_in_photos(base_model, tmp_path, monkeypatch):
    model, green = base_model
    for cwd, base in ((model.parent, model.name), (tmp_path / "elsewhere", str(model))):  # beside the base, or not
        cwd.mkdir(exist_ok=True)
        monkeypatch.chdir(cwd)
        assert cli.main(["train", "--add-style", green, "--base", base, "--steps", "1", "--image-size", "32",
                         "--batch-size", "2", "--workers", "0"]) == 0
        run = cwd / "runs" / f"{model.stem}+green"
        cfg = config_of(load_checkpoint(run))
        assert cfg.data == str(BUILTIN_PHOTOS) and cfg.style_names[-1] == "green"
        assert (run / f"{model.stem}+green.onnx").is_file()


def test_the_built_in_photos_ship_with_their_sources_and_licences():
    photos = sorted(p.name for p in BUILTIN_PHOTOS.glob("*.jpg"))
    assert len(photos) >= 6 and sum(p.stat().st_size for p in BUILTIN_PHOTOS.glob("*.jpg")) < 3e6
    rows = {m[0]: m[1] for m in re.findall(r"^\| (\S+\.jpg) \|.*\| ([^|]+) \|$",
                                           (BUILTIN_PHOTOS / "SOURCES.md").read_text(), re.M)}
    assert sorted(rows) == photos  # every photo has a row, and every row a photo
    assert all(licence.strip().startswith(("CC0", "public domain")) for licence in rows.values())
    if sys.version_info >= (3, 11):
        import tomllib

        data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
        assert {"photos/*.jpg", "photos/SOURCES.md"} <= set(data["fastnst.learn"])


def _video(path: Path, n: int) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(n):
        frame = np.full((48, 64, 3), 4 * i, np.uint8)  # frame i is grey level 4i
        frame[10:30, i:i + 20] = 255
        out.write(frame)
    out.release()
    return path


def test_data_from_a_video_samples_frames_evenly_and_holds_out_the_end(tmp_path, monkeypatch):
    video = _video(tmp_path / "clip.mp4", 40)
    monkeypatch.setattr(data_mod, "VIDEO_FRAMES", 10)
    source, held = open_dataset(str(video), holdout=3)
    frames = [*source["image"], *held]
    assert len(source) == 7 and len(held) == 3
    index = [int(f["path"].rsplit("#", 1)[1]) for f in frames]
    assert index == sorted(index) and index[0] == 0 and index[-1] == 39  # first to last, evenly
    assert max(np.diff(index)) - min(np.diff(index)) <= 1
    grey = [np.asarray(data_mod.decode_image(f, 8))[40, 60].mean() for f in frames]
    assert np.allclose(grey, 4 * np.array(index), atol=6)  # each item is the frame it names
    Image.new("RGB", (40, 40), (1, 2, 3)).save(tmp_path / "still.png")
    with pytest.raises(Exception, match="not a folder of photos"):
        open_dataset(str(tmp_path / "still.png"))


def test_a_new_style_starts_from_the_base_style_that_paints_closest_to_it():
    torch.manual_seed(0)
    net = TransformNet(replace(TINY, n_styles=4)).eval()
    with torch.no_grad():
        for norm in net.norms():  # three distinct base styles; row 3, the new one, is theirs' mean
            norm.weight[:3].add_(torch.randn_like(norm.weight[:3]))
            norm.bias[:3].add_(torch.randn_like(norm.bias[:3]))
            norm.weight[3], norm.bias[3] = norm.weight[:3].mean(0), norm.bias[:3].mean(0)
    crops = torch.rand(2, 3, 32, 32)
    photo = to_tensor(np.asarray(Image.effect_noise((48, 48), 40).convert("RGB")))[None]
    with torch.no_grad():
        painting = net(photo, torch.eye(4)[1:2])  # what base style 1 paints
    ploss = PerceptualLoss.from_config(TINY_LOSS, [painting])
    losses = style_losses(net, ploss, crops, range(3), 0)
    assert losses.argmin() == 1 and losses.min() < losses.max()
    names = ("a", "b", "c", "new")
    assert start_new_styles(net, ploss, crops, 3, [3], "nearest", names) == ["b"]
    for norm in net.norms():
        assert torch.equal(norm.weight[3], norm.weight[1]) and torch.equal(norm.bias[3], norm.bias[1])
    assert start_new_styles(net, ploss, crops, 3, [3], "c", names) == ["c"]
    assert all(torch.equal(norm.bias[3], norm.bias[2]) for norm in net.norms())


@pytest.mark.slow
def test_webcam_learn_plays_the_nearest_style_then_swaps_in_the_new_one_headless(base_model, tmp_path, monkeypatch,
                                                                                capsys):
    ort = pytest.importorskip("onnxruntime")
    from tests.conftest import read_video, write_video

    model, green = base_model
    video = write_video(tmp_path / "clip.mp4", 40)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out.mp4"
    assert cli.main(["webcam", "--learn", green, "--model", str(model), "--source", str(video), "--no-display",
                     "--frames", "30", "--output", str(out), "--width", "0"]) == 0
    printed = capsys.readouterr().out
    run = tmp_path / "runs" / f"{model.stem}+green"
    final = run / f"{model.stem}+green.onnx"
    assert f"model: {final.relative_to(tmp_path)}" in printed and "--style green" in printed  # where, how to play
    assert config_of(load_checkpoint(run)).style_names == ("red", "blue", "green")
    frames, _ = read_video(out)
    assert len(frames) == 30
    published = sorted((run / "live").glob("live-*.onnx"))
    assert published[0].name == "live-000000.onnx" and len(published) >= 2  # where it started, then on
    # The first published model is the nearest base style: the same output as that style of the base.
    frame = np.ascontiguousarray(frames[0][None])
    run_model = lambda path, w: ort.InferenceSession(str(path)).run(None, {"frames": frame, "style": np.float32(w)})[0]
    first = run_model(published[0], [1.0])
    assert min(np.abs(first.astype(int) - run_model(model, np.eye(2)[i]).astype(int)).max() for i in range(2)) <= 1
    assert not np.array_equal(first, run_model(final, np.eye(3)[2]))  # then it learned


def test_webcam_learn_needs_the_painting(tiny_onnx, synthetic_video, tmp_path, capsys):
    assert cli.main(["webcam", "--learn", str(tmp_path / "none.jpg"), "--model", str(tiny_onnx), "--source",
                     str(synthetic_video), "--no-display", "--frames", "1"]) == 2
    assert "painting not found" in capsys.readouterr().err
