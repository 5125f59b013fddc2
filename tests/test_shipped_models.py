"""Shipped styles: every installed model loads, has its card and metadata, and runs;
`fastnst models`, `webcam` with no --model and `--model NAME`, on a temporary models folder."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
from conftest import read_video, synthetic_frames

import fastnst.play.shipped
from fastnst import UserError
from fastnst.cli import main
from fastnst.play.model import StyleModel, resolve_model
from fastnst.play.shipped import card_summary, shipped_dir, shipped_models

METADATA_KEYS = ("fastnst.style", "fastnst.version", "fastnst.config", "fastnst.vgg", "fastnst.io")
_SHIPPED = shipped_models()
_NONE_YET = pytest.param(None, marks=pytest.mark.skip(reason=f"no shipped models installed yet in {shipped_dir()}"))


# ---------------------------------------------------------------- the models actually shipped
@pytest.mark.parametrize("name", list(_SHIPPED) or [_NONE_YET])
def test_shipped_model_loads_has_card_and_metadata_and_runs(name):
    path = _SHIPPED[name]
    model = StyleModel(name, provider="cpu", threads=1)  # by name, as users reach it
    assert model.path == path
    card = path.with_suffix(".md")
    assert card.is_file(), f"{name} has no model card {card.name}"
    assert card_summary(card), f"{card.name} has no one-line summary"
    missing = [k for k in METADATA_KEYS if not model.metadata.get(k)]
    assert not missing, f"{name} lacks metadata {missing}"
    assert model.metadata["fastnst.io"] == "uint8-bgr-nhwc"
    frame = synthetic_frames(1, (64, 48))[0]  # (48, 64, 3)
    outs = []
    for i in range(len(model.style_names)):  # every style of a multi-style model
        model.set_style(np.eye(len(model.style_names), dtype=np.float32)[i])
        out = model.run(frame)
        assert out.shape == (48, 64, 3) and out.dtype == np.uint8
        assert not np.array_equal(out, frame), model.style_names[i]
        assert not any(np.array_equal(out, o) for o in outs), f"{model.style_names[i]} plays an earlier style"
        outs.append(out)


# The fields that define a trained model; paths (style, data, run_dir, output) may differ between machines.
RECIPE_FIELDS = ("net", "loss", "lr", "lr_schedule", "image_size", "style_size", "batch_size", "steps", "seed", "holdout",
                 "tune")


@pytest.mark.parametrize("name", list(_SHIPPED) or [_NONE_YET])
def test_recipe_matches_the_shipped_model(name):
    """``train/<name>.toml``, or the last stage in ``train/<name>/``, is the recipe of ``models/<name>.onnx``:
    the same config as its metadata, as `fastnst train --recipe` resolves it. A stage whose ``base`` is the
    recipe beside it builds on that recipe's config (its run is not at hand here)."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from fastnst.config import TrainConfig, from_dict, load_recipe, read_recipe
    from fastnst.learn.recipe import resolve_train

    train = Path(__file__).resolve().parents[1] / "train"
    stages = sorted((train / name).glob("*.toml"))
    recipe = stages[-1] if stages else train / f"{name}.toml"
    assert recipe.is_file(), f"shipped model {name} has no recipe {recipe} (nor stages in {train / name})"
    base = read_recipe(recipe).get("base")  # a stage names the recipe of the run it builds on
    want = asdict(resolve_train(recipe, base_config=load_recipe(recipe.parent / base) if base else None))
    meta = StyleModel(name, provider="cpu", threads=1).metadata["fastnst.config"]
    got = asdict(from_dict(TrainConfig, json.loads(meta)))
    diff = {k: (want[k], got[k]) for k in RECIPE_FIELDS if want[k] != got[k]}
    assert not diff, f"{recipe} differs from models/{name}.onnx (recipe, model): {diff}"
    assert [Path(s).stem for s in want["style_paths"]] == [Path(s).stem for s in got["style_paths"]]


@pytest.mark.slow
@pytest.mark.parametrize("name", list(_SHIPPED) or [_NONE_YET])
def test_shipped_model_reads_back_as_a_base_for_add_style(name):
    """``--base NAME`` and ``fastnst export NAME``: the weights read back from the file give the
    model's own output (to one level of 255) for every style."""
    torch = pytest.importorskip("torch")
    from fastnst.learn.export import FrameIO, read_onnx

    net, cfg = read_onnx(_SHIPPED[name])
    model = StyleModel(name, provider="cpu", threads=1)
    assert cfg.style_names == tuple(model.style_names)
    frame = synthetic_frames(1, (64, 48))[0]
    io = FrameIO(net)
    for w in np.eye(len(model.style_names), dtype=np.float32):
        model.set_style(w)
        with torch.no_grad():
            got = io(torch.from_numpy(frame[None]), torch.from_numpy(w))[0].numpy()
        assert np.abs(got.astype(int) - model.run(frame)).max() <= 1


def test_models_command_lists_the_shipped_models(capsys):
    if not _SHIPPED:
        pytest.skip(f"no shipped models installed yet in {shipped_dir()}")
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name, path in _SHIPPED.items():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert card_summary(path.with_suffix(".md")) in line


# ---------------------------------------------------------------- the plumbing, on a temporary folder
@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """An empty folder standing in for the installed ``fastnst.models``."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr(fastnst.play.shipped, "shipped_dir", lambda: folder)
    return folder


def _ship(folder, tiny_onnx, name, card: str | None):
    shutil.copyfile(tiny_onnx, folder / f"{name}.onnx")
    if card is not None:
        (folder / f"{name}.md").write_text(card, encoding="utf-8")


def test_card_summary_convention(tmp_path):
    card = tmp_path / "a.md"
    card.write_text("# wave\n\n- recipe: x\n\nHokusai's *Great Wave*, 1.2 MB.\nMore text.\n", encoding="utf-8")
    assert card_summary(card) == "Hokusai's *Great Wave*, 1.2 MB."
    card.write_text("# wave\n\nFirst paragraph.\n\nSummary: the one line.\n", encoding="utf-8")
    assert card_summary(card) == "the one line."
    assert card_summary(tmp_path / "missing.md") == ""


def test_models_command(models_dir, tiny_onnx, capsys):
    assert main(["models"]) == 0
    assert "no shipped models are installed" in capsys.readouterr().out
    _ship(models_dir, tiny_onnx, "wave", "# wave\n\nSummary: Hokusai, in blue.\n")
    _ship(models_dir, tiny_onnx, "scream", None)
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("scream ") and "(no model card summary)" in lines[0]
    assert lines[1].startswith("wave ") and lines[1].endswith("Hokusai, in blue.")


def test_model_by_name_and_unknown_name(models_dir, tiny_onnx, tmp_path, capsys):
    _ship(models_dir, tiny_onnx, "wave", "Summary: x\n")
    assert resolve_model("wave") == models_dir / "wave.onnx"
    with pytest.raises(UserError, match=r"model not found: nope \(shipped models: wave\)"):
        resolve_model("nope")
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), synthetic_frames(1)[0])
    assert main(["stylize", str(photo), "--model", "wave", "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "photo_wave.png").is_file()


def test_a_style_name_points_to_the_shipped_model_that_holds_it(models_dir, tiny_onnx, trio_onnx, tmp_path, capsys):
    _ship(models_dir, tiny_onnx, "wave", None)
    _ship(models_dir, trio_onnx, "trio", None)
    with pytest.raises(UserError, match=r"model not found: b is a style of the shipped model trio "
                                        r"\(choose model trio with style b\)"):
        resolve_model("b")
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), synthetic_frames(1)[0])
    assert main(["stylize", str(photo), "--model", "trio", "--style", "b", "-o", str(tmp_path / "out.png")]) == 0
    assert main(["stylize", str(photo), "--model", "b", "-o", str(tmp_path / "out.png")]) == 2
    assert "(choose model trio with style b)" in capsys.readouterr().err


def test_webcam_without_model_plays_every_shipped_model(models_dir, tiny_onnx, trio_onnx, synthetic_video, tmp_path,
                                                        capsys):
    _ship(models_dir, tiny_onnx, "wave", None)
    _ship(models_dir, tiny_onnx, "scream", None)
    _ship(models_dir, trio_onnx, "trio", None)
    out = tmp_path / "out.mp4"
    assert main(["webcam", "--source", str(synthetic_video), "--no-display", "--frames", "3", "--width", "0",
                 "--output", str(out)]) == 0
    text = capsys.readouterr().out
    assert "shipped models: trio, scream, wave" in text  # the most styles first, then by name
    frames = read_video(out)[0]
    assert len(frames) == 3
    source = read_video(synthetic_video)[0][0]
    err = {name: np.abs(frames[0].astype(int) - StyleModel(models_dir / f"{name}.onnx", "cpu", 1).run(source)).mean()
           for name in ("trio", "scream")}
    assert err["trio"] < err["scream"], err  # trio's first style played (the mp4 is lossy: compare, not match)


def test_webcam_without_model_and_none_shipped(models_dir, synthetic_video, capsys):
    assert main(["webcam", "--source", str(synthetic_video), "--no-display", "--frames", "1"]) == 2
    assert "no shipped models are installed: name a model file" in capsys.readouterr().err
