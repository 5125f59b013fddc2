"""nets.py: every preset and option builds and keeps the size (odd ones too); the fast
preset's ONNX export (with the I/O folded into its weights) matches the plain net."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fastnst import UserError
from fastnst.config import NET_PRESETS, NetConfig, from_dict, preset, to_dict
from fastnst.learn.export import MARGIN, FrameIO, export_onnx
from fastnst.learn.nets import TransformNet

TINY = {"channels": (4, 8, 8), "res_blocks": 1}
SIZES = ((33, 47), (40, 64))  # odd and even


def tiny(cfg: NetConfig, seed: int = 0) -> TransformNet:
    torch.manual_seed(seed)
    net = TransformNet(dataclasses.replace(cfg, **{**TINY, "channels": TINY["channels"][:len(cfg.channels)]})).eval()
    with torch.no_grad():  # move off the init so that the folding has non-trivial weights to get wrong
        for p in net.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return net


@pytest.mark.parametrize("name", sorted(NET_PRESETS))
def test_presets_keep_size_in_range(name):
    net = tiny(preset(name))
    for h, w in SIZES + ((17, 9),):
        x = torch.rand(2, 3, h, w)
        with torch.no_grad():
            y = net(x)
        assert y.shape == x.shape
        assert 0 <= y.min() and y.max() <= 1


OPTIONS = [{"stem": "conv", "end_kernel": 3}, {"stem": "stride2"}, {"upsample": "nearest"}, {"upsample": "shuffle"},
           {"upsample": "deconv"}, {"upsample": "bilinear"}, {"block": "full"},
           {"block": "separable"}, {"padding": "reflect"}, {"padding": "zeros"}, {"end_kernel": 2}, {"end_kernel": 6},
           {"end_kernel": 8}, {"channels": (16, 32)}]


@pytest.mark.parametrize("changes", OPTIONS)
def test_each_option_builds_runs_and_trains(changes):
    cfg = dataclasses.replace(NET_PRESETS["fast"], **changes)
    net = tiny(cfg).train()
    x = torch.rand(2, 3, 33, 47)
    y = net(x)
    assert y.shape == x.shape
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters())


@pytest.mark.parametrize("changes", [{"stem": "pixels"}, {"padding": "circular"}, {"upsample": "bicubic"},
                                     {"block": "dense"}, {"stem": "stride2", "end_kernel": 3},
                                     {"stem": "conv", "end_kernel": 4}, {"channels": (16,)}, {"channels": (8, 16, 32, 64)}])
def test_bad_options_raise(changes):
    with pytest.raises(ValueError):
        TransformNet(dataclasses.replace(NET_PRESETS["fast"], **changes))


def test_unknown_preset_is_a_user_error():
    with pytest.raises(UserError, match="fast"):
        preset("fastest")


def test_fast_preset_runs_everything_below_full_resolution():
    """Only the stem and output touch full resolution; the stem sees the frame at stride 2."""
    net = TransformNet(NET_PRESETS["fast"])
    seen = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, o.shape[-2:]))) for m in net.modules()
             if isinstance(m, torch.nn.Conv2d)]
    net(torch.rand(1, 3, 64, 96))
    for h in hooks:
        h.remove()
    assert max(s[0] for _, s in seen) <= 32  # every Conv2d output at H/2 or below
    assert isinstance(net.out, torch.nn.ConvTranspose2d) and net.out.stride == (2, 2)


def _reference(net: TransformNet, frames: np.ndarray) -> np.ndarray:
    """The plain net on (N, H, W, 3) uint8 BGR frames, through the contract by hand: the frame
    edge-replicated by MARGIN pixels all round, and the output cropped back."""
    m, (h, w) = MARGIN, frames.shape[1:3]
    x = torch.from_numpy(frames[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255.0  # (N, 3, H, W) RGB
    with torch.no_grad():
        y = net(F.pad(x, (m,) * 4, mode="replicate"))[..., m:m + h, m:m + w]
    return (y * 255).round().permute(0, 2, 3, 1).numpy()[..., ::-1].astype(np.int16)  # (N, H, W, 3) BGR


@pytest.mark.parametrize("name, changes", [("fast", {}), ("fast", {"padding": "zeros"}),
                                           ("fast", {"end_kernel": 8}),
                                           pytest.param("johnson", {}, marks=pytest.mark.slow),
                                           ("fast", {"upsample": "bilinear"}),
                                           pytest.param("fast", {"channels": (16, 32)}, marks=pytest.mark.slow)])
def test_onnx_with_folded_io_matches_the_plain_net(tmp_path, name, changes):
    ort = pytest.importorskip("onnxruntime")
    net = tiny(dataclasses.replace(NET_PRESETS[name], **changes))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    path = export_onnx(net, tmp_path / f"{name}.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    for h, w in SIZES:
        frames = rng.integers(0, 256, (2, h, w, 3), dtype=np.uint8)
        want = _reference(net, frames)
        got = sess.run(None, {"frames": frames, "style": np.ones(1, np.float32)})[0]
        eager = FrameIO(net)(torch.from_numpy(frames), torch.ones(1)).numpy()
        assert got.shape == (2, h, w, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(np.int16) - want).max() <= 1
        assert np.abs(eager.astype(np.int16) - want).max() <= 1
    for k, v in net.state_dict().items():  # folding worked on a copy
        assert torch.equal(v, before[k]), k


def test_fast_onnx_has_no_full_resolution_transpose(tmp_path):
    onnx = pytest.importorskip("onnx")
    path = export_onnx(tiny(NET_PRESETS["fast"]), tmp_path / "fast.onnx")
    nodes = onnx.load(str(path)).graph.node
    assert not {"DepthToSpace", "SpaceToDepth"} & {n.op_type for n in nodes}
    perms = [list(a.ints) for n in nodes if n.op_type == "Transpose" for a in n.attribute]
    assert all(len(p) <= 2 for p in perms), perms  # only the pad amounts' (2, n) table, no image transpose


@pytest.mark.parametrize("padding, marked", [("reflect", False), ("zeros", True)])
def test_only_zero_padding_marks_the_frame_border(padding, marked):
    """A flat grey frame: with edge padding, the stride-2 net's output is the same 2x2 tile
    everywhere, borders included, so it cannot paint anything position-dependent (such as a
    sky band along the top edge). With zero padding the border rows and columns differ."""
    net = tiny(dataclasses.replace(NET_PRESETS["fast"], padding=padding))
    with torch.no_grad():
        y = net(torch.full((1, 3, 24, 32), 0.4))[0]  # (3, 24, 32)
    tile = y[:, 8:10, 8:10].repeat(1, 12, 16)  # an interior 2x2 tile over the whole frame
    assert ((y - tile).abs().max() > 1e-3) == marked


def test_arch_is_read_off_the_shape_and_older_configs_still_load():
    assert NET_PRESETS["fast"].arch == "fast" and dataclasses.replace(NET_PRESETS["johnson"], n_styles=3).arch == "johnson"
    assert dataclasses.replace(NET_PRESETS["fast"], channels=(16, 32)).arch == "custom"
    # A shipped model's metadata: labelled "fast" with other channels, and the blur switched off.
    old = {"antialias": False, "arch": "fast", "block": "separable", "channels": [16, 32], "end_kernel": 4,
           "padding": "reflect", "res_blocks": 9, "stem": "stride2", "styles": 12, "upsample": "nearest"}
    cfg = from_dict(NetConfig, old)
    assert (cfg.channels, cfg.res_blocks, cfg.n_styles, cfg.arch) == ((16, 32), 9, 12, "custom")
    assert "arch" not in to_dict(cfg) and "antialias" not in to_dict(cfg)
    assert from_dict(NetConfig, {"arch": "johnson", "res_blocks": 2}) == dataclasses.replace(NET_PRESETS["johnson"], res_blocks=2)
    with pytest.raises(UserError, match=r"antialias \(a blur before the stride-2 convs\) is not supported"):
        from_dict(NetConfig, {**old, "antialias": True})
