"""Never lose a run: run folders, locks, resume of copies, divergence, checkpoint integrity, and the
numbers, names and outputs that must be refused before any work.

The data-loss proofs run real ``fastnst train`` processes on a tiny net and a random VGG.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_for, write_video
from PIL import Image

from fastnst import cli

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]
TINY_RECIPE = ('[net]\nchannels = [4, 8, 8]\nres_blocks = 1\n[loss]\nvgg = "random"\n'
               'content_layers = ["relu2_1"]\nstyle_layers = {relu1_1 = 1.0, relu2_1 = 1.0}\n')


@pytest.fixture
def work(tmp_path):
    """tmp_path with data/ (6 photos), style.png, tiny.toml; returns (tmp_path, the train flags but --run-dir)."""
    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    for i in range(6):
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "data" / f"p{i}.png")
    style = np.zeros((40, 40, 3), np.uint8)
    style[::4] = (250, 40, 10)
    Image.fromarray(style).save(tmp_path / "style.png")
    (tmp_path / "tiny.toml").write_text(TINY_RECIPE)
    flags = ["--recipe", str(tmp_path / "tiny.toml"), "--style", str(tmp_path / "style.png"), "--data",
             str(tmp_path / "data"), "--image-size", "32", "--style-size", "40", "--batch-size", "2", "--workers", "0",
             "--preview-every", "0", "--log-every", "1"]
    return tmp_path, flags


def _fails(capsys, argv, message):
    """The CLI exits 2 with one line on stderr holding ``message``, and no traceback or internal error."""
    capsys.readouterr()  # what earlier commands printed
    try:
        code = cli.main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    lines = [line for line in err.split("\n") if line and "\r" not in line]  # but the progress bar's
    assert code == 2 and len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def _fastnst(*args, cwd, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "fastnst", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _run(*args, cwd) -> subprocess.CompletedProcess:
    p = _fastnst(*args, cwd=cwd)
    out, err = p.communicate(timeout=300)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _step(run: Path) -> int:
    from fastnst.learn.checkpoint import load_checkpoint

    return load_checkpoint(run)["step"]


# ---------------------------------------------------------------- a run lives where its checkpoint is
@pytest.mark.slow  # training subprocesses
def test_resuming_a_copy_leaves_the_original_byte_identical(work):
    tmp, flags = work
    first = _run("train", *flags, "--steps", "2", "--run-dir", "runs/a", cwd=tmp)  # a relative path, as recorded
    assert first.returncode == 0, first.stderr
    import shutil

    shutil.copytree(tmp / "runs" / "a", tmp / "runs" / "b")
    before = _files(tmp / "runs" / "a")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    resumed = _run("train", "--resume", "../runs/b", "--steps", "4", cwd=elsewhere)  # from another working folder
    assert resumed.returncode == 0, resumed.stderr
    assert _files(tmp / "runs" / "a") == before
    assert _step(tmp / "runs" / "b") == 4 and "runs/b/style.onnx" in resumed.stdout
    assert list(elsewhere.iterdir()) == []  # no runs/a recreated where the recorded path points from here
    # --run-dir with --resume: continue a copy of the run in a new folder, the original untouched
    branched = _run("train", "--resume", "runs/a", "--steps", "3", "--run-dir", "runs/c", cwd=tmp)
    assert branched.returncode == 0, branched.stderr
    assert _files(tmp / "runs" / "a") == before and _step(tmp / "runs" / "c") == 3


# ---------------------------------------------------------------- a folder holding a run is guarded
def test_a_folder_holding_a_run_is_refused_unless_overwrite(work, capsys):
    tmp, flags = work
    run = tmp / "run"
    assert cli.main(["train", *flags, "--steps", "1", "--run-dir", str(run)]) == 0
    before = _files(run)
    _fails(capsys, ["train", *flags, "--steps", "2", "--run-dir", str(run)], "holds another run (checkpoint.pt")
    assert _files(run) == before
    assert cli.main(["train", *flags, "--steps", "2", "--run-dir", str(run), "--overwrite"]) == 0
    assert _step(run) == 2
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.slow  # training subprocesses
def test_a_second_training_on_a_folder_is_refused_while_the_first_finishes_untouched(work):
    tmp, flags = work
    run = tmp / "run"
    first = _fastnst("train", *flags, "--steps", "40", "--run-dir", run, cwd=tmp)
    try:
        assert wait_for(lambda: (run / "metrics.jsonl").is_file() or first.poll() is not None)
        first.send_signal(signal.SIGSTOP)  # it holds the folder, mid-run, for as long as the second one takes
        try:
            second = _run("train", *flags, "--steps", "3", "--run-dir", run, cwd=tmp)
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.returncode == 2, second.stderr
        assert f"is in use by process {first.pid}" in second.stderr and second.stderr.count("\n") == 1
        out, err = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, err
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == list(range(1, 41))
    assert _step(run) == 40 and not (run / ".lock").exists()


@pytest.mark.slow  # training subprocesses
def test_a_killed_runs_stale_lock_is_taken_over(work):
    tmp, flags = work
    run = tmp / "run"
    first = _fastnst("train", *flags, "--steps", "100000", "--checkpoint-every", "1", "--run-dir", run, cwd=tmp)
    try:
        assert wait_for(lambda: (run / "checkpoint.pt").is_file() or first.poll() is not None)
    finally:
        first.kill()  # SIGKILL: no handler runs, the lock file stays
        first.communicate()
    assert (run / ".lock").read_text().strip() == str(first.pid)
    again = _run("train", "--resume", run, "--steps", str(_step(run) + 1), cwd=tmp)
    assert again.returncode == 0, again.stderr
    assert f"taking over the lock of process {first.pid}" in again.stderr
    assert not (run / ".lock").exists() and not list(run.glob(".checkpoint.*"))


# ---------------------------------------------------------------- divergence keeps a checkpoint that resumes
def test_divergence_keeps_only_finite_weights_whose_output_is_finite(work, capsys):
    tmp, flags = work
    run = tmp / "run"
    err = _fails(capsys, ["train", *flags, "--steps", "6", "--lr", "1e6", "--checkpoint-every", "1", "--run-dir", str(run)],
                 "Last good checkpoint: ")
    from fastnst.learn.checkpoint import load_checkpoint, net_of

    ckpt = load_checkpoint(run)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    with torch.no_grad():
        assert torch.isfinite(net_of(ckpt)(torch.rand(2, 3, 32, 32))).all()
    assert f"{run / 'checkpoint.pt'} (step {ckpt['step']};" in err
    # it resumes; at this --lr the run diverges again, and again the checkpoint is not replaced by that
    kept = (run / "checkpoint.pt").read_bytes()
    _fails(capsys, ["train", "--resume", str(run), "--steps", "6"], f"Last good checkpoint: {run} (step {ckpt['step']};")
    assert (run / "checkpoint.pt").read_bytes() == kept


# ---------------------------------------------------------------- checkpoint writes and reads
def test_a_damaged_checkpoint_is_one_line_naming_the_file(work, capsys):
    tmp, flags = work
    run = tmp / "run"
    assert cli.main(["train", *flags, "--steps", "1", "--run-dir", str(run)]) == 0
    ckpt_file = run / "checkpoint.pt"
    good = ckpt_file.read_bytes()
    state = torch.load(ckpt_file, weights_only=True)
    del state["optimizer"]
    torch.save(state, ckpt_file)
    _fails(capsys, ["train", "--resume", str(run), "--steps", "2"], f"checkpoint {ckpt_file} is damaged: its optimizer")
    data = bytearray(good)  # 64 bytes flipped inside the weights' bytes
    at = len(data) // 2
    data[at:at + 64] = bytes(b ^ 0xFF for b in data[at:at + 64])
    ckpt_file.write_bytes(bytes(data))
    err = _fails(capsys, ["train", "--resume", str(run), "--steps", "2"], str(ckpt_file))
    assert "damaged" in err or "not a fastnst checkpoint" in err


def test_a_full_disk_during_a_checkpoint_save_is_one_line_and_keeps_the_earlier_one(work, capsys):
    """A 2 MB tmpfs (needs root to mount)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    tmp, flags = work
    disk = tmp / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run = disk / "run"
        assert cli.main(["train", *flags, "--steps", "1", "--run-dir", str(run)]) == 0
        (run / "style.onnx").unlink()
        st = os.statvfs(disk)
        (disk / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 16384))  # room for metrics, not a checkpoint
        _fails(capsys, ["train", "--resume", str(run), "--steps", "3"], f"No space left on device: {run / 'checkpoint.pt'}")
        assert _step(run) == 1
        assert not [p for p in run.iterdir() if ".tmp" in p.name]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---------------------------------------------------------------- every number and list on its way in
def _recipe(where: str = "", key: str = "", value: str = "") -> str:
    """The tiny recipe with ``key = value`` set at the top level or in [net] or [loss]."""
    tables = {"": {}, "net": {"channels": "[4, 8, 8]", "res_blocks": "1"},
              "loss": {"vgg": '"random"', "content_layers": '["relu2_1"]', "style_layers": "{relu1_1 = 1.0, relu2_1 = 1.0}"}}
    if key:
        tables[where][key] = value
    return "".join((f"[{name}]\n" if name else "") + "".join(f"{k} = {v}\n" for k, v in t.items())
                   for name, t in tables.items())


@pytest.mark.parametrize("case, message", [
    (["--style-weight", "-1"], "style_weight must be at least 0, got -1.0"),
    (["--style-weight", "nan"], "style_weight must be at least 0 and at most 3.40282e+38"),
    (["--lr", "nan"], "lr must be above 0"),
    (["--lr", "inf"], "lr must be above 0"),
    (["--epochs", "inf"], "epochs must be at least 0 and at most 1e+06, got inf"),
    (["--style-weight", "1e39"], "style_weight must be at least 0 and at most 3.40282e+38"),  # inf in float32
    (["--steps", "-5"], "steps must be at least 0, got -5"),
    (("loss", "style_weight", "inf"), "style_weight must be at least 0 and at most 3.40282e+38"),
    (("", "epochs", "inf"), "epochs must be at least 0 and at most 1e+06, got inf"),
    (("net", "res_blocks", "-1"), "[net] res_blocks must be at least 0, got -1"),
    (("loss", "style_layers", '["relu1_1"]'), "style_layers must be a table"),
    (("loss", "content_layers", "[]"), "content_layers must be a list of one or more layer names"),
    (("loss", "content_layers", '["relu9_9"]'), "unknown vgg19 layer(s): relu9_9"),
    (("", "precision", '"fp8"'), "precision must be one of auto, fp32, bf16, got 'fp8'"),
    (["--teacher", "nope", "--distill-weight", "1"], "fastnst run, checkpoint or model not found: nope"),
    ("thin", "is too thin: 64x1 at style_size 64"),
])
def test_bad_numbers_lists_and_inputs_fail_before_the_run_folder_exists(work, capsys, case, message):
    tmp, flags = work
    run = tmp / "run"
    args = ["train", *flags, "--run-dir", str(run)]
    if case == "thin":  # 2000x8 is 64x0.26 at --style-size 64
        Image.new("RGB", (2000, 8), "red").save(tmp / "thin.png")
        case = ["--style", str(tmp / "thin.png"), "--style-size", "64"]
    if "epochs" not in str(case) and "--steps" not in case:
        args += ["--steps", "1"]
    if isinstance(case, tuple):
        (tmp / "tiny.toml").write_text(_recipe(*case))
        case = []
    _fails(capsys, args + case, message)
    assert not run.exists()


def test_a_mismatched_teacher_leaves_no_run_folder(work, capsys):
    tmp, flags = work
    from fastnst.config import NetConfig, TrainConfig, to_dict
    from fastnst.learn.checkpoint import CHECKPOINT_FORMAT, save_checkpoint
    from fastnst.learn.nets import TransformNet

    cfg = TrainConfig(style_paths=("a.png", "b.png"), net=NetConfig(channels=(4, 8, 8), res_blocks=1, n_styles=2))
    (tmp / "teacher").mkdir()
    save_checkpoint(tmp / "teacher" / "checkpoint.pt", {"format": CHECKPOINT_FORMAT, "config": to_dict(cfg),
                                                         "model": TransformNet(cfg.net).state_dict(), "step": 1})
    _fails(capsys, ["train", *flags, "--steps", "1", "--run-dir", str(tmp / "run"), "--teacher", str(tmp / "teacher"),
                    "--distill-weight", "1"], "the teacher has 2 style(s), this run 1")
    assert not (tmp / "run").exists()


def test_optimize_refuses_a_nan_blend_weight(tmp_path, capsys):
    img = tmp_path / "c.png"
    Image.new("RGB", (48, 40), "blue").save(img)
    _fails(capsys, ["optimize", "--content", str(img), "--style", str(img), "--style", str(img), "--style-blend", "nan,1",
                    "-o", str(tmp_path / "o.png"), "--size", "32", "--iterations", "1"], "style_blend: weights must be")
    assert not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------- style specs
def test_style_weights_are_checked_for_float32(trio_onnx, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photo)
    assert cli.main(["stylize", "-m", str(trio_onnx), str(photo), "--style", "a:1e-50", "-o", str(tmp_path / "x.png")]) == 0
    assert cli.main(["stylize", "-m", str(trio_onnx), str(photo), "--style", "a", "-o", str(tmp_path / "a.png")]) == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "x.png")), np.asarray(Image.open(tmp_path / "a.png")))
    for spec, message in (("a:1e39", "weights must be numbers from 0 to 3.403e+38"),
                          ("a:1,b:1e-50", "weight 1e-50 is too small next to the others")):
        _fails(capsys, ["stylize", "-m", str(trio_onnx), str(photo), "--style", spec, "-o", str(tmp_path / "y.png")],
               message)
        _fails(capsys, ["webcam", "-m", str(trio_onnx), "--source", str(photo), "--style", spec, "--no-display",
                        "--output", str(tmp_path / "y.mp4")], message)
    assert not (tmp_path / "y.png").exists() and not (tmp_path / "y.mp4").exists()


@pytest.mark.parametrize("argv, flag", [
    (["stylize", "-m", "{model}", "{photo}", "--style", ""], "--style"),
    (["webcam", "-m", "{model}", "--source", "{photo}", "--no-display", "--style", " "], "--style"),
    (["export", "{model}", "--styles", ""], "--styles"),
    (["export", "{model}", "--rename", ""], "--rename"),
    (["stylize", "-m", "{model}", ""], "INPUT"),
])
def test_empty_values_are_errors_not_everything(trio_onnx, tmp_path, capsys, argv, flag):
    photo = tmp_path / "photo.png"
    Image.new("RGB", (48, 40), "blue").save(photo)
    argv = [a.format(model=trio_onnx, photo=photo) for a in argv]
    _fails(capsys, argv + ["-o", str(tmp_path / "out.png" if argv[0] == "stylize" else tmp_path / "o.onnx")]
           if argv[0] != "webcam" else argv, f"{flag} is empty")
    assert [p.name for p in tmp_path.iterdir()] == ["photo.png"]


# ---------------------------------------------------------------- names that --style cannot select
def test_style_names_a_spec_cannot_select_are_refused_where_they_enter(work, capsys):
    tmp, flags = work
    comma = tmp / "x,y.png"
    Image.open(tmp / "style.png").save(comma)
    _fails(capsys, ["train", *flags, "--style", str(comma), "--steps", "1", "--run-dir", str(tmp / "r")],
           "style name (from")
    assert not (tmp / "r").exists()
    assert cli.main(["train", *flags, "--steps", "1", "--run-dir", str(tmp / "r")]) == 0
    Image.open(tmp / "style.png").save(tmp / "a:b.png")
    _fails(capsys, ["train", "--add-style", str(tmp / "a:b.png"), "--base", str(tmp / "r"), "--steps", "1"],
           "'a:b' cannot be selected")
    assert not list(tmp.glob("r+*"))
    for rename, shown in (("style=x:y", "'x:y'"), ("style= b", "' b'"), ("style=a\tb", "'a\\tb'")):
        _fails(capsys, ["export", str(tmp / "r"), "--rename", rename, "-o", str(tmp / "m.onnx")], f"{shown} cannot be selected")
    assert not (tmp / "m.onnx").exists()


def test_the_play_hint_is_quoted_for_a_shell(work, capsys):
    tmp, flags = work
    run = tmp / "my runs" / "a b"
    (tmp / "my runs").mkdir()
    assert cli.main(["train", *flags, "--steps", "1", "--run-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert f"--model '{run / 'style.onnx'}'" in out


# ---------------------------------------------------------------- metadata against the graph
def test_a_model_naming_styles_it_has_no_input_for_is_refused(tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    from fastnst.learn.export import torchscript_export

    class Invert(torch.nn.Module):
        def forward(self, x):
            return 255 - x

    path = tmp_path / "two.onnx"
    torchscript_export(Invert(), (torch.zeros(1, 64, 64, 3, dtype=torch.uint8),), path, ["frames"],
                       dynamic_axes={"frames": {0: "N", 1: "H", 2: "W"}})
    model = onnx.load(str(path))
    model.metadata_props.add(key="fastnst.styles", value=json.dumps(["a", "b"]))
    onnx.save(model, str(path))
    photo = tmp_path / "p.png"
    Image.new("RGB", (48, 40), "blue").save(photo)
    _fails(capsys, ["stylize", "-m", str(path), str(photo), "-o", str(tmp_path / "o.png")],
           "names 2 styles but has no style input")


# ---------------------------------------------------------------- what a format can store
def test_outputs_too_large_for_their_format_fail_before_the_work(tiny_onnx, tmp_path, capsys):
    wide = tmp_path / "wide.png"
    Image.new("RGB", (16400, 16), "blue").save(wide)
    _fails(capsys, ["stylize", "-m", str(tiny_onnx), str(wide), "-o", str(tmp_path / "o.webp")],
           "WEBP images are at most 16383 px a side")
    _fails(capsys, ["optimize", "--content", str(wide), "--style", str(wide), "--size", "70000", "--max-size", "70000",
                    "-o", str(tmp_path / "o.jpg")], "JPG images are at most 65500 px a side")
    assert [p.name for p in tmp_path.iterdir()] == ["wide.png"]


# ---------------------------------------------------------------- temp files of killed writers
def test_temps_left_by_kill_9_are_removed_by_the_next_write(tiny_onnx, tmp_path):
    clip = write_video(tmp_path / "long.mp4", 400, (320, 240))
    out = tmp_path / "out"
    out.mkdir()
    proc = _fastnst("stylize", "-m", tiny_onnx, clip, "-o", out / "v.mp4", cwd=tmp_path)
    try:
        assert wait_for(lambda: any(".tmp" in p.name for p in out.iterdir()) or proc.poll() is not None)
    finally:
        proc.kill()
        proc.communicate()
    left = [p for p in out.iterdir() if ".tmp" in p.name]
    assert left and f".{proc.pid}." in left[0].name
    for name in (f".k.{proc.pid}.xyz.tmp.onnx", f"..k.{proc.pid}.ab.tmp.{proc.pid}.cd.tmp.onnx"):  # an export's
        (out / name).write_bytes(b"")
    mine = out / f".k.{os.getpid()}.abc.tmp.onnx"  # a live writer's: kept
    mine.write_bytes(b"")
    photo = tmp_path / "p.png"
    Image.new("RGB", (48, 40), "blue").save(photo)
    done = _run("stylize", "-m", tiny_onnx, photo, "-o", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted([mine.name, "p_tiny.png"])


# ---------------------------------------------------------------- a tuned style's painting
@pytest.mark.slow  # training subprocesses
def test_tune_style_takes_the_painting_where_it_is_now(work, capsys):
    tmp, flags = work
    blue = tmp / "blue.png"
    Image.new("RGB", (40, 40), (10, 30, 250)).save(blue)
    base = tmp / "base"
    assert cli.main(["train", *flags, "--style", str(blue), "--steps", "1", "--run-dir", str(base)]) == 0
    moved = tmp / "moved.png"
    (tmp / "style.png").rename(moved)  # the painting is no longer where the base recorded it
    common = ["train", "--tune-style", "style", "--base", str(base), "--steps", "1", "--workers", "0",
              "--preview-every", "0", "--run-dir", str(tmp / "tuned")]
    _fails(capsys, common, f"the painting of style style is not at {tmp / 'style.png'}: give where it is as style image style=PATH")
    assert not (tmp / "tuned").exists()
    _fails(capsys, common + ["--style-image", f"nope={moved}"], "give NAME=IMAGE for a style of the base (style, blue)")
    assert cli.main(common + ["--style-image", f"style={moved}"]) == 0
    from fastnst.learn.checkpoint import config_of, load_checkpoint

    assert config_of(load_checkpoint(tmp / "tuned")).style_names == ("style", "blue")


# ---------------------------------------------------------------- stylize never replaces what it named itself
def test_stylize_names_outputs_by_style_and_replaces_only_named_files(trio_onnx, tmp_path, capsys):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photo)
    out = tmp_path / "out"
    for style in ("a", "b"):
        assert cli.main(["stylize", "-m", str(trio_onnx), "--style", style, str(photo), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["photo_trio_a.png", "photo_trio_b.png"]
    before = (out / "photo_trio_a.png").read_bytes()
    _fails(capsys, ["stylize", "-m", str(trio_onnx), "--style", "a", str(photo), "-o", str(out)],
           "photo_trio_a.png exists")
    assert (out / "photo_trio_a.png").read_bytes() == before
    assert cli.main(["stylize", "-m", str(trio_onnx), "--style", "c", str(photo), "-o", str(out / "photo_trio_a.png")]) == 0
    assert (out / "photo_trio_a.png").read_bytes() != before  # a file the user named is replaced
    assert cli.main(["stylize", "-m", str(trio_onnx), "--style", "a", str(photo), "-o", str(out), "--overwrite"]) == 0
    assert (out / "photo_trio_a.png").read_bytes() == before


def test_export_replaces_only_a_model_the_user_named(work, capsys, monkeypatch):
    tmp, flags = work
    assert cli.main(["train", *flags, "--steps", "1", "--run-dir", str(tmp / "r"), "-o", str(tmp / "r.onnx")]) == 0
    monkeypatch.chdir(tmp)
    (tmp / "style.onnx").write_bytes(b"mine")
    _fails(capsys, ["export", str(tmp / "r")], "style.onnx exists; name the output file")
    assert (tmp / "style.onnx").read_bytes() == b"mine"
    assert cli.main(["export", str(tmp / "r"), "-o", "style.onnx"]) == 0 and (tmp / "style.onnx").read_bytes() != b"mine"
