"""--precision: auto picks bf16 only where the device runs it natively, the fallback is fp32 with
a notice, bf16 losses match fp32, and the numerically sensitive parts stay fp32."""

import logging
import platform
from dataclasses import replace

import pytest
import torch

from fastnst import UserError
from fastnst.config import LossConfig, NetConfig
from fastnst.learn import device as device_mod
from fastnst.learn.device import autocast, pick_precision
from fastnst.learn.losses import PerceptualLoss, gram_matrix
from fastnst.learn.nets import TransformNet

CPU = torch.device("cpu")
TINY_LOSS = LossConfig(vgg="random", content_layers=("relu2_1",), style_layers={"relu1_1": 1.0, "relu2_1": 1.0},
                       style_weight=10.0)


@pytest.mark.parametrize("native, want", [(True, "bf16"), (False, "fp32")])
def test_auto_follows_native_bf16_support(monkeypatch, native, want):
    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: native)
    precision, why = pick_precision("auto", CPU)
    assert precision == want and ("has native bf16" if native else "has no native bf16") in why
    assert pick_precision("fp32", CPU)[0] == "fp32"
    with pytest.raises(UserError, match="unknown precision"):
        pick_precision("fp16", CPU)


@pytest.mark.skipif(not (platform.system() == "Linux" and platform.machine() == "x86_64"),
                    reason="reads the CPU's flags from /proc/cpuinfo")
def test_native_bf16_means_the_cpu_has_bf16_instructions():
    # oneDNN says "bf16 supported" on any AVX-512 CPU and emulates it there (0.38x fp32's speed
    # on an AVX-512 Xeon without AVX512-BF16); auto must ask for the instructions themselves.
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    assert device_mod.cpu_has_fast_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_auto_trains_the_fast_net_in_fp32_on_a_gpu_even_with_bf16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "a test GPU")
    gpu = torch.device("cuda")
    assert pick_precision("auto", gpu, launch_bound=True)[0] == "fp32"
    assert pick_precision("auto", gpu)[0] == "bf16"  # VGG at 512 px (optimize, eval), the Johnson net
    assert pick_precision("bf16", gpu, launch_bound=True) == ("bf16", "as asked")


def test_devices_that_are_not_there_are_one_line_errors(monkeypatch):
    from fastnst.learn.device import pick_device

    assert pick_device("cpu") == CPU
    with pytest.raises(UserError, match="unknown device 'gpu'"):
        pick_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(UserError, match="has 1 CUDA GPU"):
        pick_device("cuda:3")
    assert pick_device("auto", local_rank=0) == torch.device("cuda", 0)
    with pytest.raises(UserError, match="process 1 of torchrun has no GPU: this machine has 1"):
        pick_device("auto", local_rank=1)  # torchrun --nproc-per-node 2 on one GPU


def test_forced_bf16_without_native_support_warns_once(monkeypatch, caplog):
    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: False)
    with caplog.at_level(logging.WARNING):
        assert pick_precision("bf16", CPU)[0] == "bf16"
    assert len(caplog.records) == 1 and "emulated" in caplog.records[0].getMessage()


def _tiny_run(tmp_path, **changes):
    """A one-step training config on three noise photos and a noise painting, with ``changes``."""
    from PIL import Image

    from fastnst.config import TrainConfig

    data = tmp_path / "d"
    data.mkdir()
    for i in range(3):
        Image.effect_noise((40, 40), 30 + 10 * i).convert("RGB").save(data / f"p{i}.png")
    Image.effect_noise((40, 40), 80).convert("RGB").save(tmp_path / "s.png")
    cfg = TrainConfig(style_paths=(str(tmp_path / "s.png"),), data=str(data), image_size=32, style_size=40, batch_size=2,
                      steps=1, workers=0, run_dir=str(tmp_path / "run"), preview_every=0, device="cpu",
                      net=NetConfig(channels=(4, 8, 8), res_blocks=1), loss=TINY_LOSS)
    return replace(cfg, **changes)


def test_training_without_bf16_support_falls_back_to_fp32_with_a_notice(monkeypatch, caplog, tmp_path):
    from fastnst.learn.checkpoint import load_checkpoint
    from fastnst.learn.train import train

    monkeypatch.setattr(device_mod, "cpu_has_fast_bf16", lambda: False)
    cfg = _tiny_run(tmp_path)
    with caplog.at_level(logging.INFO, logger="fastnst.learn.train"):
        train(cfg, export=False)
    lines = [r.getMessage() for r in caplog.records if "training" in r.getMessage()]
    assert len(lines) == 1 and "in fp32 (auto: this CPU has no native bf16)" in lines[0], lines
    assert load_checkpoint(cfg.run_dir)["precision"] == "fp32"


def test_gram_matrix_stays_fp32_under_bf16_autocast():
    x = torch.rand(2, 8, 16, 16)
    for feats in (x, x.bfloat16()):  # fp32 features, and the bf16 ones that autocast's convolutions give
        with autocast(CPU, "bf16"):
            g = gram_matrix(feats)
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, gram_matrix(feats.float()), rtol=0, atol=0)


def test_bf16_losses_match_fp32_within_3_percent():
    """A tiny net and a random VGG: bf16 convolutions keep 8 bits of mantissa (~0.4% per op);
    the Gram matrices and reductions stay fp32, so the loss terms agree within 3%."""
    torch.manual_seed(0)
    net = TransformNet(NetConfig(channels=(4, 8, 8), res_blocks=1))
    ploss = PerceptualLoss.from_config(replace(TINY_LOSS, tv_weight=1.0), [torch.rand(1, 3, 48, 48)])
    x = torch.rand(4, 3, 48, 48)
    out = {}
    for precision in ("fp32", "bf16"):
        with torch.no_grad(), autocast(CPU, precision):
            out[precision] = ploss(net(x), ploss.content_targets(x))
    for k in ("content", "style", "tv", "total"):
        assert out["bf16"][k].dtype == torch.float32
        assert out["bf16"][k].item() == pytest.approx(out["fp32"][k].item(), rel=0.03), k


@pytest.mark.slow
def test_bf16_training_runs_vgg_in_bf16_and_the_transform_net_in_fp32(tmp_path):
    """In bf16 a trained H/4 net's gradient drifted from its fp32 one (docs/training.md), so only
    the loss network's convolutions take bf16: every pass of the net, in training and in the
    stability term, gives fp32, while VGG's convolutions give bf16."""
    from fastnst.learn.train import train

    cfg = _tiny_run(tmp_path, precision="bf16", loss=replace(TINY_LOSS, stability_weight=1.0))
    seen: dict[str, set] = {"net": set(), "conv": set()}

    def record(module, args, output):
        if isinstance(module, TransformNet):
            seen["net"].add(output.dtype)
        elif isinstance(module, torch.nn.Conv2d):
            seen["conv"].add(output.dtype)

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        train(cfg, export=False)
    finally:
        hook.remove()
    assert seen["net"] == {torch.float32}
    assert torch.bfloat16 in seen["conv"]
