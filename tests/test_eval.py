"""evaluate.py and `fastnst eval`: finite losses of a tiny model, the loss read from the
model's metadata, an identity model scoring zero content loss, and the Gatys reference row."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from fastnst import UserError, cli
from fastnst.config import LossConfig, NetConfig, TrainConfig, to_json, train_config_from_json
from fastnst.learn.evaluate import TERMS, evaluate, load_eval_image
from fastnst.learn.export import export_onnx
from fastnst.learn.nets import TransformNet

# A loss that a random VGG cut at relu2_1 computes in milliseconds.
LOSS = LossConfig(vgg="random", content_layers=("relu1_2",), style_layers={"relu1_1": 1.0, "relu2_1": 1.0},
                  content_weight=2.0, style_weight=1e3, tv_weight=0.5)
CFG = TrainConfig(style_size=48, net=NetConfig(channels=(4, 8, 8), res_blocks=1), loss=LOSS)


def _image(path, w, h, seed):
    rng = np.random.default_rng(seed)
    xs, ys = np.meshgrid(np.linspace(0, 255, w), np.linspace(0, 255, h))
    rgb = np.dstack([xs, ys, rng.integers(0, 256, (h, w))]).astype(np.uint8)  # (h, w, 3)
    Image.fromarray(rgb).save(path)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (w, h) in enumerate([(48, 40), (40, 56), (64, 64)]):
        _image(folder / f"p{i}.png", w, h, i)
    return folder


@pytest.fixture
def style(tmp_path):
    return _image(tmp_path / "style.png", 60, 44, 9)


def _identity_model(path, metadata):
    """The uint8 contract with an Identity graph: its output is its input."""
    from onnx import TensorProto, helper

    shape = ["N", "H", "W", 3]
    graph = helper.make_graph([helper.make_node("Identity", ["frames"], ["stylized"])], "identity",
                              [helper.make_tensor_value_info("frames", TensorProto.UINT8, shape)],
                              [helper.make_tensor_value_info("stylized", TensorProto.UINT8, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)  # opset 17's IR: older onnxruntimes reject newer
    for k, v in metadata.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def models(tmp_path):
    meta = {"fastnst.config": to_json(CFG), "fastnst.style": "tiny"}
    torch.manual_seed(0)
    tiny = export_onnx(TransformNet(CFG.net), tmp_path / "tiny.onnx", meta)
    return tiny, _identity_model(tmp_path / "identity.onnx", meta)


def test_load_eval_image_is_a_center_square(tmp_path):
    path = _image(tmp_path / "wide.png", 90, 30, 0)
    out = load_eval_image(path, 20)
    assert out.shape == (20, 20, 3) and out.dtype == np.uint8
    full = np.asarray(Image.open(path).resize((60, 20), Image.Resampling.LANCZOS))
    assert np.array_equal(out, full[:, 20:40])


def test_train_config_round_trips_through_json():
    assert train_config_from_json(to_json(CFG)) == CFG
    assert train_config_from_json(None) == TrainConfig()  # no metadata: defaults (with a warning)
    with pytest.raises(UserError, match="unreadable training config"):
        train_config_from_json("{not json")


def test_model_losses_are_finite_and_weighted_terms_add_up(models, photos, style):
    torch.manual_seed(0)
    (row,) = evaluate(models[0], photos, [style], size=32)
    assert row.images == 3 and row.method == "tiny (custom)"  # a shape no preset has
    assert all(math.isfinite(row.losses[k]) and row.losses[k] >= 0 for k in TERMS)
    assert row.losses["content"] > 0 and row.losses["style"] > 0
    parts = row.losses["content"] + row.losses["style"] + row.losses["tv"]
    assert row.losses["total"] == pytest.approx(parts, rel=1e-5)


def test_identity_model_has_zero_content_loss_and_tiny_model_does_not(models, photos, style):
    torch.manual_seed(0)
    (tiny,) = evaluate(models[0], photos, [style], size=32, limit=2)
    torch.manual_seed(0)
    (ident,) = evaluate(models[1], photos, [style], size=32, limit=2)
    assert ident.images == tiny.images == 2
    assert ident.losses["content"] == pytest.approx(0.0, abs=1e-9)
    assert tiny.losses["content"] > 1e-6
    # TV of the photo itself, weighted: the synthetic photos have a noisy blue channel.
    assert ident.losses["tv"] > 0


@pytest.mark.slow
def test_gatys_reference_row(models, photos, style):
    torch.manual_seed(0)
    rows = evaluate(models[1], photos, [style], size=32, limit=1, gatys=5)
    assert [r.method for r in rows] == ["tiny (custom)", "gatys-5"] and rows[1].images == 1
    assert all(math.isfinite(rows[1].losses[k]) for k in TERMS)
    # Gatys starts from the photo (the identity model's output) and descends the same loss.
    assert rows[1].losses["total"] <= rows[0].losses["total"] * (1 + 1e-6)


def test_cli_prints_a_table(models, photos, style, capsys):
    torch.manual_seed(0)
    assert cli.main(["eval", "--model", str(models[0]), "--style", str(style), "--content", str(photos),
                     "--size", "32", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "| method | images | content | style | tv | total |" in out
    assert "| tiny (custom) | 2 |" in out


@pytest.mark.parametrize("args,msg", [(["--content", "MISSING"], "not found"), (["--size", "8"], "size"),
                                      (["--limit", "0"], "limit")])
def test_cli_bad_input_is_one_line_exit_2(models, photos, style, capsys, args, msg):
    base = {"--model": str(models[0]), "--style": str(style), "--content": str(photos)}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["eval"] + [x for kv in base.items() for x in kv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def test_holdout_scores_only_the_last_photos(models, photos, style):
    torch.manual_seed(0)
    (last,) = evaluate(models[0], photos, [style], size=32, holdout=1)
    assert last.images == 1
    torch.manual_seed(0)
    (every,) = evaluate(models[0], photos, [style], size=32)
    assert every.images == 3 and every.losses["total"] != pytest.approx(last.losses["total"])
    with pytest.raises(UserError, match="has only 3 images"):  # not a slice from the wrong end
        evaluate(models[0], photos, [style], size=32, holdout=4)


def test_cli_video_reports_warping_error_and_smoothing(models, tmp_path, capsys):
    from conftest import write_video

    video = write_video(tmp_path / "clip.mp4", 6, size=(64, 48))
    assert cli.main(["eval", "--model", str(models[1]), "--video", str(video), "--size", "64x48", "--smooth"]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    inp = float(lines["input"].split()[2])
    ident = float(lines["stylized"].split()[1])
    assert ident == pytest.approx(inp)  # an identity model flickers exactly as much as its input
    assert "--smooth" in out


def test_cli_video_measures_every_style_of_a_multi_style_model(trio_onnx, tmp_path, capsys):
    from conftest import write_video

    video = write_video(tmp_path / "clip.mp4", 4, size=(64, 48))
    assert cli.main(["eval", "--model", str(trio_onnx), "--video", str(video), "--size", "64x48"]) == 0
    out = capsys.readouterr().out
    heads = [line.split(":")[0] for line in out.splitlines() if line.startswith("trio/")]
    assert heads == ["trio/a", "trio/b", "trio/c"]
    stylized = [float(line.split()[1]) for line in out.splitlines() if line.startswith("  stylized")]
    assert len(stylized) == 3 and len(set(stylized)) == 3  # each style measured on its own outputs


def test_cli_eval_needs_photos_or_video(models, capsys):
    assert cli.main(["eval", "--model", str(models[0])]) == 2
    assert "--video" in capsys.readouterr().err


def test_a_multi_style_model_is_scored_per_style(tmp_path, photos):
    from dataclasses import replace

    paths = [str(_image(tmp_path / f"{n}.png", 40, 40, i)) for i, n in enumerate(("ink", "oil"))]
    cfg = replace(CFG, style_paths=tuple(paths), net=replace(CFG.net, n_styles=2))
    torch.manual_seed(0)
    net = TransformNet(cfg.net).eval()
    with torch.no_grad():
        for norm in net.norms():
            norm.weight[1].mul_(3.0)
    model = export_onnx(net, tmp_path / "duo.onnx", {"fastnst.config": to_json(cfg), "fastnst.style": "duo",
                                                    "fastnst.styles": json.dumps(["ink", "oil"])})
    from fastnst.learn.vgg import VGGEncoder

    enc = VGGEncoder.from_config(cfg.loss)  # one random VGG for both calls
    rows = evaluate(model, photos, size=32, encoder=enc)  # the paintings its config recorded
    assert [(r.method, r.style) for r in rows] == [("duo/ink (custom)", "ink"), ("duo/oil (custom)", "oil")]
    assert rows[0].losses["total"] != rows[1].losses["total"]
    (oil,) = [r for r in evaluate(model, photos, [paths[1], paths[0]], size=32, encoder=enc) if r.style == "oil"]
    assert oil.losses == rows[1].losses  # --style matched by name, in any order
    with pytest.raises(UserError, match="the model's styles are ink, oil"):
        evaluate(model, photos, [str(tmp_path / "wax.png")], size=32)
