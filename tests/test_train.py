"""The training loop: loss goes down, resume is exact, checkpoints are atomic, bad input fails
early, Ctrl-C checkpoints, NaN stops, DDP ranks agree, and the export CLI round-trips."""

import json
import os
import signal
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fastnst import UserError, cli
from fastnst.config import NET_PRESETS, LossConfig, TrainConfig
from fastnst.learn.data import to_tensor
from fastnst.learn.losses import PerceptualLoss
from fastnst.learn.nets import TransformNet
from fastnst.learn.checkpoint import CHECKPOINT_NAME, config_of, load_checkpoint, net_of, resume_config, save_checkpoint
from fastnst.learn.train import MetricSums, StepMetrics, TrainingDiverged, lr_at, train

TINY_NET = replace(NET_PRESETS["johnson"], channels=(4, 8, 8), res_blocks=1)
TINY_LOSS = LossConfig(vgg="random", content_layers=("relu2_1",), style_layers={"relu1_1": 1.0, "relu2_1": 1.0},
                       style_weight=10.0)


@pytest.fixture
def setup(tmp_path):
    """(config, tmp_path): a style image, 6 photos + a corrupt file + a text file, a tiny net."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        y, x = np.mgrid[0:40, 0:48]
        img = np.stack([(x * (i + 1)) % 256, (y * 3 + 40 * i) % 256, rng.integers(0, 256, (40, 48))], -1)
        Image.fromarray(img.astype(np.uint8)).save(data / f"p{i}.png")
    (data / "a_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0garbage")
    (data / "notes.txt").write_text("not an image")
    style = np.zeros((40, 40, 3), np.uint8)
    style[::4] = (250, 40, 10)  # red stripes
    Image.fromarray(style).save(tmp_path / "style.png")
    cfg = TrainConfig(style_paths=(str(tmp_path / "style.png"),), data=str(data), image_size=32, style_size=40, batch_size=2,
                      lr=1e-2, steps=6, workers=0, run_dir=str(tmp_path / "run"), checkpoint_every=100,
                      preview_every=3, log_every=1, net=TINY_NET, loss=TINY_LOSS)
    return cfg, tmp_path


def test_net_output_shape_equals_input_shape_for_odd_sizes():
    net = TransformNet(TINY_NET)
    for h, w in ((33, 47), (17, 64), (9, 13)):
        assert net(torch.rand(2, 3, h, w)).shape == (2, 3, h, w)


def fixed_loss(cfg, net):
    torch.manual_seed(0)
    ploss = PerceptualLoss.from_config(cfg.loss, [to_tensor(np.asarray(Image.open(cfg.style_paths[0])))[None]])
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        return ploss(net(x), ploss.content_targets(x))["total"].item()


@pytest.mark.slow
def test_training_lowers_the_loss_and_writes_the_run_folder(setup):
    cfg, tmp = setup
    cfg = replace(cfg, steps=15)
    torch.manual_seed(cfg.seed)
    before = fixed_loss(cfg, TransformNet(cfg.net))
    result = train(cfg)
    assert result.step == 15 and fixed_loss(cfg, result.net) < 0.8 * before
    run = Path(cfg.run_dir)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 16))
    assert {"content", "style", "tv", "total", "images_per_s"} <= set(rows[0])
    assert (run / "preview_000003.png").is_file() and (run / "preview_final.png").is_file()
    assert result.onnx == run / "style.onnx" and result.onnx.is_file()
    assert [Path(p).name for p in result.skipped] == ["a_corrupt.jpg"]  # counted; notes.txt never listed
    ckpt = load_checkpoint(run)
    assert ckpt["step"] == 15 and ckpt["data_position"] == 30 and ckpt["vgg"] == "random"
    assert ckpt["config"]["net"]["channels"] == (4, 8, 8) and "optimizer" in ckpt and "rng" in ckpt


@pytest.mark.slow
@pytest.mark.parametrize("stability", [0.0, 1.0])  # the stability term draws shifts and noise from torch's RNG
def test_resume_is_exact(setup, stability):
    cfg, tmp = setup  # exact on the CPU; on an H200 the two runs differed beyond these tolerances
    cfg = replace(cfg, device="cpu", loss=replace(cfg.loss, stability_weight=stability))
    straight = train(replace(cfg, run_dir=str(tmp / "a")), export=False)
    train(replace(cfg, steps=3, run_dir=str(tmp / "b")), export=False)
    with open(tmp / "b" / "metrics.jsonl", "a") as f:
        f.write('{"time": 1795675342.5, "st')  # a line cut short by kill -9
    ckpt = load_checkpoint(tmp / "b")
    resumed = train(resume_config(ckpt, {"steps": 6, "device": "cpu"}, tmp / "b"), resume=tmp / "b", export=False)
    assert resumed.step == 6
    for (k, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    metrics = [[json.loads(line)["total"] for line in (tmp / d / "metrics.jsonl").read_text().splitlines()]
               for d in "ab"]
    np.testing.assert_allclose(metrics[0], metrics[1], rtol=1e-5)


@pytest.mark.slow
def test_resume_refuses_to_change_the_run_but_not_the_machine(setup):
    cfg, tmp = setup
    train(replace(cfg, steps=1, device="cpu", workers=0), export=False)
    ckpt = load_checkpoint(cfg.run_dir)
    with pytest.raises(UserError, match="lr"):
        resume_config(ckpt, {"steps": 4, "lr": 0.5}, cfg.run_dir)
    # device and workers were this machine's: elsewhere the run starts from the defaults again
    moved = resume_config(ckpt, {"steps": 4}, cfg.run_dir)
    assert (moved.device, moved.workers) == (TrainConfig().device, TrainConfig().workers) != ("cpu", 0)
    assert resume_config(ckpt, {"device": "cpu", "workers": 0}, cfg.run_dir) == replace(config_of(ckpt), device="cpu", workers=0)


def test_cosine_schedule_decays_the_lr_to_zero_and_the_optimizer_follows_it(setup):
    cfg, tmp = setup
    cfg = replace(cfg, lr_schedule="cosine", steps=4)
    assert [lr_at(cfg, s, 4) for s in (0, 2, 4)] == pytest.approx([1e-2, 5e-3, 0.0])
    assert lr_at(replace(cfg, lr_schedule="constant"), 3, 4) == 1e-2
    train(cfg, export=False)
    last = load_checkpoint(cfg.run_dir)["optimizer"]["param_groups"][0]["lr"]
    assert last == pytest.approx(lr_at(cfg, 3, 4)) and 0 < last < 2e-3
    with pytest.raises(UserError, match="lr_schedule"):
        replace(cfg, lr_schedule="linear")


def test_interrupted_checkpoint_write_keeps_the_good_one(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(path, {"format": "fastnst-checkpoint-v1", "step": 3, "model": {}, "config": {}})
    with pytest.raises(Exception):  # torch.save dies half-way: a lambda cannot be pickled
        save_checkpoint(path, {"format": "fastnst-checkpoint-v1", "step": 4, "w": torch.zeros(1000), "bad": lambda: 0})
    assert load_checkpoint(path)["step"] == 3
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(setup):
    cfg, tmp = setup
    train(replace(cfg, steps=2), export=False)
    with pytest.raises(TrainingDiverged, match="nan at step .; stopped. This run saved no checkpoint yet"):
        train(replace(cfg, lr=1e30), export=False, overwrite=True)  # Adam steps of 1e30 blow the weights up
    assert load_checkpoint(cfg.run_dir)["step"] == 2


@pytest.mark.slow
def test_distillation_pulls_the_net_towards_the_teacher(setup):
    cfg, tmp = setup
    cfg = replace(cfg, steps=12, preview_every=0, device="cpu")  # seeded on the CPU; a GPU computes other numbers
    train(replace(cfg, run_dir=str(tmp / "teacher"), net=replace(TINY_NET, channels=(8, 8, 16), res_blocks=2)), export=False)
    teacher = net_of(load_checkpoint(tmp / "teacher"))
    distilled = replace(cfg, teacher=str(tmp / "teacher"), loss=replace(cfg.loss, distill_weight=10.0))
    nets = {name: train(replace(c, run_dir=str(tmp / name)), export=False).net
            for name, c in (("plain", cfg), ("distilled", distilled))}
    ploss = PerceptualLoss.from_config(replace(cfg.loss, style_layers={}), [torch.rand(1, 3, 40, 40)])
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        gap = {name: ploss(net(x), ploss.content_targets(x), ploss.content_targets(teacher(x)))["distill"].item()
               for name, net in nets.items()}
    assert gap["distilled"] < 0.7 * gap["plain"], gap


def write_recipe(cfg, path):
    """The tiny net and random VGG as a recipe, for the CLI tests."""
    path.write_text('[net]\nchannels = [4, 8, 8]\nres_blocks = 1\n[loss]\nvgg = "random"\n'
                    'content_layers = ["relu2_1"]\nstyle_layers = {relu1_1 = 1.0, relu2_1 = 1.0}\n')
    return ["--recipe", str(path), "--style", cfg.style_paths[0], "--data", cfg.data, "--image-size", "32",
            "--style-size", "40", "--batch-size", "2", "--workers", "0", "--run-dir", cfg.run_dir]


@pytest.mark.parametrize("case, message", [
    ("missing-style", "style image not found"),
    ("corrupt-style", "cannot read style image"),
    ("missing-data", "data folder not found"),
    ("empty-data", "data folder has no images"),
    ("bad-output", "output folder does not exist"),
    ("bad-resume", "not a fastnst checkpoint"),
    ("teacher-without-weight", "distillation needs both a teacher"),
    ("missing-teacher", "fastnst run, checkpoint or model not found"),
])
def test_bad_input_fails_before_training(setup, capsys, case, message):
    cfg, tmp = setup
    args = write_recipe(cfg, tmp / "r.toml") + ["--steps", "2"]
    (tmp / "empty").mkdir()
    (tmp / "corrupt.jpg").write_bytes(b"nope")
    (tmp / "junk.pt").write_bytes(b"junk")
    args += {"missing-style": ["--style", str(tmp / "nope.jpg")], "corrupt-style": ["--style", str(tmp / "corrupt.jpg")],
             "missing-data": ["--data", str(tmp / "nope")], "empty-data": ["--data", str(tmp / "empty")],
             "bad-output": ["-o", str(tmp / "no" / "m.onnx")], "bad-resume": ["--resume", str(tmp / "junk.pt")],
             "teacher-without-weight": ["--teacher", str(tmp / "junk.pt")],
             "missing-teacher": ["--teacher", str(tmp / "nope"), "--distill-weight", "1"]}[case]
    if case == "bad-resume":
        args = [a for a in args if a not in ("--recipe", str(tmp / "r.toml"))]
    code = cli.main(["train", *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (Path(cfg.run_dir) / CHECKPOINT_NAME).exists()


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_saves_a_checkpoint_and_exits_128_plus_the_signal(setup, capsys, signum, code):
    cfg, tmp = setup
    args = write_recipe(cfg, tmp / "r.toml") + ["--steps", "100000", "--log-every", "1", "--preview-every", "0"]
    metrics = Path(cfg.run_dir) / "metrics.jsonl"

    def interrupt_once_training():
        deadline = time.monotonic() + 60
        while not metrics.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signum)

    threading.Thread(target=interrupt_once_training, daemon=True).start()
    assert cli.main(["train", *args]) == code
    step = load_checkpoint(cfg.run_dir)["step"]
    assert 0 < step < 100000
    assert cli.main(["train", "--resume", cfg.run_dir, "--steps", str(step + 2)]) == 0
    assert load_checkpoint(cfg.run_dir)["step"] == step + 2
    assert "model:" in capsys.readouterr().out


@pytest.mark.slow
def test_export_cli_round_trips_a_checkpoint(setup, capsys):
    onnx = pytest.importorskip("onnx")
    cfg, tmp = setup
    train(replace(cfg, steps=1), export=False)
    out = tmp / "m.onnx"
    assert cli.main(["export", cfg.run_dir, "-o", str(out)]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["fastnst.style"] == "style" and meta["fastnst.vgg"] == "random"
    assert json.loads(meta["fastnst.config"])["net"]["channels"] == [4, 8, 8]
    assert cli.main(["export", str(tmp / "style.png"), "-o", str(out)]) == 2
    # int8, calibrated on the run's own training photos: this one-step net moves too far (a
    # trained one stays within 4 levels), so the export refuses in one line and writes nothing
    # (the success path: tests/test_quantize.py)
    capsys.readouterr()
    assert cli.main(["export", cfg.run_dir, "--int8", "-o", str(tmp / "q.onnx")]) == 2
    err = capsys.readouterr().err
    assert "int8 quantization moved the output" in err and err.count("\n") == 1, err
    assert not (tmp / "q.onnx").exists()


def _ddp_rank(rank, world, port, cfg, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    result = train(cfg, export=False)
    torch.save({"state": result.net.state_dict(), "step": result.step}, f"{out}/rank{rank}.pt")


@pytest.mark.slow
def test_two_process_gloo_ddp_ends_with_identical_weights(setup):
    cfg, tmp = setup
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # gloo on the CPU: two processes need no second GPU
    torch.multiprocessing.spawn(_ddp_rank, args=(2, port, replace(cfg, steps=3, device="cpu"), str(tmp)), nprocs=2)
    r0, r1 = (torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["step"] == r1["step"] == 3
    torch.manual_seed(cfg.seed)
    init = TransformNet(cfg.net).state_dict()
    for k in r0["state"]:
        torch.testing.assert_close(r0["state"][k], r1["state"][k], rtol=0, atol=0, msg=k)
    assert any(not torch.equal(r0["state"][k], init[k]) for k in init)  # it did train
    ckpt = load_checkpoint(cfg.run_dir)
    assert ckpt["world_size"] == 2 and ckpt["data_position"] == 3 * 2 * 2  # 3 steps x 2 images x 2 ranks
    row = json.loads((Path(cfg.run_dir) / "metrics.jsonl").read_text().splitlines()[-1])  # the ranks' means
    assert row["step"] == 3 and all(np.isfinite(row[k]) and row[k] >= 0 for k in ("content", "style", "tv", "total"))


def test_step_metrics_travel_as_one_vector_and_sum_into_a_metrics_row():
    m = StepMetrics(losses=torch.tensor([1.0, 2.0, 3.0, 4.0]), stop=torch.tensor([1.0]),
                    style_sums=torch.tensor([0.5, 0.0, 0.25]), style_counts=torch.tensor([1.0, 0.0, 3.0]))
    vec = m.to_tensor()
    assert vec.shape == (4 + 1 + 2 * 3,)
    back = StepMetrics.from_tensor(vec).all_reduced(world=1)  # one process: the same figures, in float64
    assert back.losses.dtype == torch.float64 and back.total == 4.0 and back.stop.item() == 1.0
    assert back.style_sums.tolist() == [0.5, 0.0, 0.25] and back.style_counts.tolist() == [1.0, 0.0, 3.0]
    sums = MetricSums(3)
    sums.add(back)
    sums.add(StepMetrics.from_tensor(torch.zeros(11, dtype=torch.float64)))
    row, per_style = sums.means(("a", "b", "c"))
    assert sums.steps == 2 and row == {"content": 0.5, "style": 1.0, "tv": 1.5, "total": 2.0}
    assert per_style == {"a": 0.5, "c": 0.25 / 3}  # b had no samples: no mean
