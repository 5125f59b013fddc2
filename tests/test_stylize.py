"""`fastnst stylize`: images and videos round-trip with their size, frame count and fps."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import SHARED_DATA, read_video, synthetic_frames

from fastnst.cli import main


def _image(tmp_path, name="photo.png", size=(45, 37)):
    path = tmp_path / name
    cv2.imwrite(str(path), synthetic_frames(1, size)[0])
    return path


def test_image_round_trip_keeps_size(tiny_onnx, tmp_path, capsys):
    src = _image(tmp_path)
    out_dir = tmp_path / "out"
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(out_dir), "--size", "24"]) == 0
    out = out_dir / "photo_tiny.png"
    assert str(out) in capsys.readouterr().out
    img = cv2.imread(str(out))
    assert img.shape == (37, 45, 3)
    assert not np.array_equal(img, cv2.imread(str(src)))


def test_output_may_be_a_file_name_for_one_input(tiny_onnx, tmp_path):
    src = _image(tmp_path)
    out = tmp_path / "sub" / "styled.jpg"
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(out)]) == 0
    assert cv2.imread(str(out)).shape == (37, 45, 3)
    assert sorted(p.name for p in out.parent.iterdir()) == ["styled.jpg"]


@pytest.mark.parametrize("extra, message", [(["second"], "names one file, but there are 2 outputs"),
                                            ([], "a photo needs an image output name")])
def test_output_file_name_errors(tiny_onnx, tmp_path, capsys, extra, message):
    src = _image(tmp_path)
    inputs = [str(src)] + [str(_image(tmp_path, "b.png")) for _ in extra]
    out = tmp_path / ("o.jpg" if extra else "o.mp4")
    assert main(["stylize", "-m", str(tiny_onnx), *inputs, "-o", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_a_small_photo_is_processed_at_512_by_default(tiny_onnx, tmp_path):
    """Strokes have a fixed size in pixels: a small photo is stylized larger and scaled back."""
    src = _image(tmp_path, size=(80, 60))
    outs = {}
    for size in (None, "512", "80"):
        out = tmp_path / f"{size}.png"
        assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(out), *(["--size", size] if size else [])]) == 0
        outs[size] = cv2.imread(str(out))
    assert outs[None].shape == (60, 80, 3)
    np.testing.assert_array_equal(outs[None], outs["512"])
    assert not np.array_equal(outs[None], outs["80"])


def test_strength_zero_returns_the_input(tiny_onnx, tmp_path):
    src = _image(tmp_path)
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path), "--strength", "0"]) == 0
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "photo_tiny.png")), cv2.imread(str(src)))


def test_video_round_trip_keeps_frames_size_and_fps(tiny_onnx, synthetic_video, tmp_path):
    out_dir = tmp_path / "out"
    assert main(["stylize", "-m", str(tiny_onnx), str(synthetic_video), "-o", str(out_dir),
                 "--size", "32", "--preserve-color", "--strength", "0.8"]) == 0
    frames, fps = read_video(out_dir / "clip_tiny.mp4")
    assert len(frames) == 12 and frames[0].shape == (48, 64, 3)
    assert fps == pytest.approx(10.0)
    assert list(out_dir.iterdir()) == [out_dir / "clip_tiny.mp4"]  # no temp files left


def test_video_with_smooth_keeps_frames_and_size(tiny_onnx, synthetic_video, tmp_path):
    plain_dir, smooth_dir = tmp_path / "plain", tmp_path / "smooth"
    assert main(["stylize", "-m", str(tiny_onnx), str(synthetic_video), "-o", str(plain_dir), "--size", "32"]) == 0
    assert main(["stylize", "-m", str(tiny_onnx), str(synthetic_video), "-o", str(smooth_dir), "--size", "32",
                 "--smooth"]) == 0
    plain, _ = read_video(plain_dir / "clip_tiny.mp4")
    smooth, fps = read_video(smooth_dir / "clip_tiny.mp4")
    assert len(smooth) == 12 and smooth[0].shape == (48, 64, 3) and fps == pytest.approx(10.0)
    assert any(not np.array_equal(a, b) for a, b in zip(plain, smooth))  # smoothing did something


def test_several_models_give_several_outputs(tiny_onnx, trio_onnx, synthetic_video, tmp_path):
    src = _image(tmp_path)
    out_dir = tmp_path / "out"
    assert main(["stylize", "-m", str(tiny_onnx), "-m", str(trio_onnx), str(src), str(synthetic_video),
                 "-o", str(out_dir)]) == 0
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["clip_tiny.mp4", "clip_trio_a.mp4", "photo_tiny.png", "photo_trio_a.png"]  # trio's first style
    assert len(read_video(out_dir / "clip_trio_a.mp4")[0]) == 12
    tiny, trio = (cv2.imread(str(out_dir / f"photo_{m}.png")) for m in ("tiny", "trio_a"))
    assert not np.array_equal(tiny, trio)  # each output is its own model's


@pytest.mark.parametrize("args, message", [
    (["--strength", "1.5"], "error: strength must be between 0 and 1"),
    (["--size", "4"], "error: size must be at least 16"),
])
def test_bad_flags(tiny_onnx, tmp_path, capsys, args, message):
    src = _image(tmp_path)
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_inputs(tiny_onnx, tmp_path, capsys):
    assert main(["stylize", "-m", str(tiny_onnx), str(tmp_path / "nope.png"), "-o", str(tmp_path)]) == 2
    assert "input not found" in capsys.readouterr().err
    txt = tmp_path / "notes.txt"
    txt.write_text("hi")
    assert main(["stylize", "-m", str(tiny_onnx), str(txt), "-o", str(tmp_path)]) == 2
    assert "unsupported input" in capsys.readouterr().err
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video")
    assert main(["stylize", "-m", str(tiny_onnx), str(broken), "-o", str(tmp_path / "out")]) == 2
    assert "cannot open video" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing partial, not even the folder


def test_same_output_twice_is_refused(tiny_onnx, tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = _image(tmp_path / "a"), _image(tmp_path / "b")
    assert main(["stylize", "-m", str(tiny_onnx), str(a), str(b), "-o", str(tmp_path)]) == 2
    assert "two files would be written" in capsys.readouterr().err


def test_real_photo(tiny_onnx, tmp_path):
    content = SHARED_DATA / "content"
    if not content.is_dir():
        pytest.skip(f"integration data not present at {SHARED_DATA}")
    src = sorted(content.glob("*.jp*g"))[0]
    assert main(["stylize", "-m", str(tiny_onnx), str(src), "-o", str(tmp_path), "--size", "64"]) == 0
    out = tmp_path / f"{src.stem}_tiny{src.suffix}"
    assert cv2.imread(str(out)).shape == cv2.imread(str(src)).shape


def test_load_image_takes_any_mode_as_it_looks(tmp_path):
    from PIL import Image

    from fastnst.play.images import load_image

    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., 0] = 255  # red, hidden under full transparency on the left half
    rgba[:, 3:, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert (img[:, :3] == 255).all() and (img[:, 3:] == [255, 0, 0]).all()  # transparent is white, not red
    for name, deep, want in (("dark", [0, 200], [0, 1]), ("bright", [257 * 100, 65535], [100, 255])):
        Image.fromarray(np.array([deep], np.uint16)).save(tmp_path / f"{name}.png")  # 16-bit grayscale
        assert load_image(tmp_path / f"{name}.png")[0, :, 0].tolist() == want  # scaled by depth, not range
    Image.new("L", (6, 4), 77).save(tmp_path / "g.png")
    assert load_image(tmp_path / "g.png").shape == (4, 6, 3)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    Image.new("RGB", (6, 4)).save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").shape == (6, 4, 3)
