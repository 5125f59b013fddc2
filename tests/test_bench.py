"""`fastnst bench`: sizes, the table, the reference column, the video source. No timing assertions."""

from __future__ import annotations

import pytest

from fastnst import UserError
from fastnst.play.bench import parse_sizes
from fastnst.cli import main


def test_parse_sizes():
    assert parse_sizes("320x240, 640X480") == [(320, 240), (640, 480)]
    for bad in ("640", "640x", "axb", "8x8"):
        with pytest.raises(UserError):
            parse_sizes(bad)


def test_bench_prints_a_row_per_model_and_size(tiny_onnx, capsys):
    assert main(["bench", "-m", str(tiny_onnx), "--size", "32x24,48x32", "--repeats", "1", "--seconds", "0.01",
                 "--threads", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("tiny")]
    assert len(rows) == 2 and "32x24" in rows[0] and "48x32" in rows[1]
    assert "x ref" not in out


def test_bench_reference_gives_ratios(tiny_onnx, capsys):
    assert main(["bench", "-m", str(tiny_onnx), "--size", "32x32", "--repeats", "1", "--seconds", "0.01",
                 "--reference"]) == 0
    out = capsys.readouterr().out
    assert "x ref" in out
    ref, tiny = (next(line.split() for line in out.splitlines() if line.startswith(name))
                 for name in ("johnson (reference)", "tiny"))
    # the x ref column is the row's fps over the reference's at the same size
    assert ref[-1] == "1.00x" and ref[2] == tiny[1] == "32x32"
    assert float(tiny[-1].rstrip("x")) == pytest.approx(float(tiny[2]) / float(ref[3]), rel=0.01)  # of rounded figures


def test_bench_smooth_adds_a_row_and_its_cost(tiny_onnx, capsys):
    assert main(["bench", "-m", str(tiny_onnx), "--size", "32x24", "--repeats", "2", "--seconds", "0.01",
                 "--smooth"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("tiny")]
    assert len(rows) == 3  # without, with smoothing, and the cost line
    assert rows[1].startswith("tiny +smooth ") and "32x24" in rows[1]
    assert "of the fps without smoothing at 32x24" in rows[2]


def test_bench_from_a_video(tiny_onnx, synthetic_video, capsys):
    assert main(["bench", "-m", str(tiny_onnx), "--size", "32x999", "--source", str(synthetic_video),
                 "--repeats", "2", "--seconds", "0.01"]) == 0
    assert "32x24" in capsys.readouterr().out  # the width is taken, the height follows the video


def test_bench_needs_something_to_measure(capsys):
    assert main(["bench", "--size", "32x24"]) == 2
    assert "nothing to measure" in capsys.readouterr().err
