"""Multi-style models on the player side: --style specs, the style weights in ``StyleModel`` and the
player loop, `stylize --style` and `--sheet`, and `models` listing the styles."""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from conftest import read_video, synthetic_frames

from fastnst import UserError
from fastnst.cli import main
from fastnst.play.player import PlayerState, run_player, style_fields
from fastnst.play.model import StyleModel, parse_style_spec, select_style

NAMES = ["a", "b", "c"]


def _session_run(path, frame, weights):
    """The ONNX model itself on one (H, W, 3) frame with explicit style weights."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"frames": frame[None], "style": np.asarray(weights, np.float32)})[0][0]


def _photo(tmp_path, size=(48, 40)):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), synthetic_frames(1, size)[0])
    return path


def test_one_hot_and_blended_weights_through_the_runtime_match_the_model(trio_onnx):
    model = StyleModel(trio_onnx, "cpu", threads=1)
    assert model.style_names == NAMES and model.label() == "trio/a"
    frame = synthetic_frames(1, (40, 32))[0]
    outs = []
    for i, name in enumerate(NAMES):
        model.set_style(parse_style_spec(name, model.style_names))
        outs.append(model.run(frame))
        np.testing.assert_array_equal(outs[-1], _session_run(trio_onnx, frame, np.eye(3)[i]))
        assert model.label() == f"trio/{name}"
    assert min(np.abs(x.astype(int) - y).mean() for x, y in ((outs[0], outs[1]), (outs[1], outs[2]))) > 1
    model.set_style(parse_style_spec("a:0.7,c:0.3", model.style_names))
    np.testing.assert_array_equal(model.run(frame), _session_run(trio_onnx, frame, [0.7, 0, 0.3]))
    assert model.label() == "a 70% + c 30%"


def test_blend_spec_is_parsed_and_normalised():
    np.testing.assert_allclose(parse_style_spec("a:0.7, b:0.3", NAMES), [0.7, 0.3, 0])
    np.testing.assert_allclose(parse_style_spec("a:2,c:2", NAMES), [0.5, 0, 0.5])
    np.testing.assert_allclose(parse_style_spec("b", NAMES), [0, 1, 0])
    np.testing.assert_allclose(parse_style_spec("a,b:3", NAMES), [0.25, 0.75, 0])  # a bare name weighs 1


@pytest.mark.parametrize("spec, message", [("d", "unknown style d"), ("a:-1,b:1", "negative weight for a"),
                                           ("a:0,b:0", "weights are all 0"), ("a:x", "use NAME or NAME:WEIGHT"),
                                           ("a,,b", "use NAME or NAME:WEIGHT"), ("a,a", "use NAME or NAME:WEIGHT")])
def test_bad_style_spec_is_one_line_naming_the_styles(trio_onnx, tmp_path, capsys, spec, message):
    assert main(["stylize", "-m", str(trio_onnx), str(_photo(tmp_path)), "--style", spec, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "styles: a, b, c" in err and err.count("\n") == 1
    assert not list(tmp_path.glob("photo_trio*.png"))


def test_a_name_picks_the_model_that_has_it(tiny_onnx, trio_onnx):
    models = [StyleModel(tiny_onnx, "cpu", 1), StyleModel(trio_onnx, "cpu", 1)]
    assert select_style(models, "tiny")[0] == 0
    i, weights = select_style(models, "b:1,c:3")
    assert i == 1 and weights.tolist() == [0, 0.25, 0.75]
    with pytest.raises(UserError, match="no model has all of these styles .styles: tiny, a, b, c"):
        select_style(models, "tiny,a")


def test_stylize_style_writes_that_style_of_each_model_that_has_it(tiny_onnx, trio_onnx, tmp_path, capsys):
    photo = _photo(tmp_path)
    out = tmp_path / "out.png"
    assert main(["stylize", "-m", str(tiny_onnx), "-m", str(trio_onnx), "--style", "c", str(photo), "-o", str(out),
                 "--size", "48"]) == 0  # at the photo's own size
    np.testing.assert_array_equal(cv2.imread(str(out)), _session_run(trio_onnx, cv2.imread(str(photo)), [0, 0, 1]))
    twin = tmp_path / "twin.onnx"  # a second model with style c: both write, tiny (no c) does not
    twin.write_bytes(trio_onnx.read_bytes())
    outs = tmp_path / "outs"
    assert main(["stylize", "-m", str(tiny_onnx), "-m", str(trio_onnx), "-m", str(twin), "--style", "b:1,c:1",
                 str(photo), "-o", str(outs), "--size", "48"]) == 0
    assert sorted(p.name for p in outs.iterdir()) == ["photo_trio_b50+c50.png", "photo_twin_b50+c50.png"]
    for p in outs.iterdir():
        np.testing.assert_array_equal(cv2.imread(str(p)), _session_run(trio_onnx, cv2.imread(str(photo)), [0, 0.5, 0.5]))


def test_player_loop_plays_the_state_style(tiny_onnx, trio_onnx):
    models = [StyleModel(tiny_onnx, "cpu", 1), StyleModel(trio_onnx, "cpu", 1)]
    frames = synthetic_frames(3, (32, 24))
    cap = type("Cap", (), {"read": lambda self: (True, frames.pop()) if frames else (False, None)})()
    state = PlayerState(model=1, **style_fields(np.array([0, 0.6, 0.4], np.float32)))
    summary = run_player(models, cap, keep_latest=False, width=None, display=False, state=state)
    assert summary.frames == 3
    np.testing.assert_allclose(models[1].style_weights, [0, 0.6, 0.4])


def test_sheet_is_a_labelled_grid_of_every_style(tiny_onnx, trio_onnx, tmp_path, capsys):
    photo = _photo(tmp_path)
    out = tmp_path / "sheet.png"
    assert main(["stylize", "-m", str(trio_onnx), "--sheet", str(photo), "-o", str(out)]) == 0
    sheet, bgr = cv2.imread(str(out)), cv2.imread(str(photo))
    assert sheet.shape == (40, 3 * 48, 3)  # 3 styles x a 48x40 cell
    for i in range(3):  # the label is drawn at the bottom of each cell
        cell = sheet[:20, i * 48:(i + 1) * 48]
        np.testing.assert_array_equal(cell, _session_run(trio_onnx, bgr, np.eye(3)[i])[:20])
    assert main(["stylize", "-m", str(tiny_onnx), "-m", str(trio_onnx), "--sheet", str(photo), "-o", str(out),
                 "--size", "24"]) == 0
    assert cv2.imread(str(out)).shape == (20, 4 * 24, 3)  # 1 + 3 styles, cells of long side 24


def test_blend_sheet_is_one_row_from_a_to_b(trio_onnx, tmp_path, capsys):
    photo = _photo(tmp_path)
    out = tmp_path / "blend.png"
    assert main(["stylize", "-m", str(trio_onnx), "--sheet", str(photo), "--blend", "a,c", "-o", str(out)]) == 0
    sheet, bgr = cv2.imread(str(out)), cv2.imread(str(photo))
    assert sheet.shape == (40, 5 * 48, 3)
    for k, t in enumerate((0, 0.25, 0.5, 0.75, 1)):
        np.testing.assert_array_equal(sheet[:20, k * 48:(k + 1) * 48],
                                      _session_run(trio_onnx, bgr, [1 - t, 0, t])[:20])


@pytest.mark.parametrize("args, message", [(["--blend", "a,b"], "a blend row goes with a sheet"),
                                           (["--sheet", "P", "--blend", "a"], "name two styles"),
                                           (["--sheet", "P", "--blend", "a,d"], "unknown style d"),
                                           (["--sheet", "P", "--style", "a"], "no style")])
def test_sheet_errors(trio_onnx, tmp_path, capsys, args, message):
    photo = str(_photo(tmp_path))
    argv = ["stylize", "-m", str(trio_onnx), *[photo if a == "P" else a for a in args], "-o", str(tmp_path / "s.png")]
    if "--sheet" not in args:
        argv.insert(3, photo)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "s.png").exists()


def test_models_lists_the_styles_inside_each_model(tiny_onnx, trio_onnx, capsys):
    assert main(["models", "-m", str(tiny_onnx), "-m", str(trio_onnx)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny ") and lines[1].startswith("trio ")
    assert lines[2].split() == ["3", "styles:", "a,", "b,", "c"]


def test_webcam_style_flag(trio_onnx, synthetic_video, tmp_path, capsys):
    argv = ["webcam", "-m", str(trio_onnx), "--source", str(synthetic_video), "--no-display", "--frames", "3"]
    for style in ("a", "b:1,c:1"):
        assert main([*argv, "--style", style, "--output", str(tmp_path / f"{style}.mp4")]) == 0
        assert "3 frames" in capsys.readouterr().out
    first, blend = (read_video(tmp_path / f"{style}.mp4")[0] for style in ("a", "b:1,c:1"))
    assert len(blend) == 3 and not any(np.array_equal(x, y) for x, y in zip(first, blend))  # it played the blend
    assert main([*argv, "--style", "z"]) == 2
    assert "unknown style z (styles: a, b, c)" in capsys.readouterr().err
