"""ONNX export: the uint8 BGR NHWC contract, metadata, and parity with torch at two sizes."""

import dataclasses

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from fastnst import UserError
from fastnst.config import NetConfig, TrainConfig, to_json
from fastnst.learn.export import (FLOAT_IO_CONTRACT, INPUT_NAME, IO_CONTRACT, OUTPUT_NAME, ParityError, check_parity,
                                  export_onnx, read_onnx)
from fastnst.learn.nets import TransformNet

TINY = NetConfig(channels=(4, 8, 8), res_blocks=1)
SIZES = ((33, 47), (64, 40))


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return TransformNet(TINY).eval()


def metadata(path):
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def test_uint8_export_contract_metadata_and_parity(tmp_path):
    net = tiny_net()
    path = export_onnx(net, tmp_path / "m.onnx", {"fastnst.style": "wave", "fastnst.config": "{}", "fastnst.vgg": "random"})
    meta = metadata(path)
    assert meta["fastnst.style"] == "wave" and meta["fastnst.io"] == IO_CONTRACT
    assert {"fastnst.version", "fastnst.config", "fastnst.vgg"} <= set(meta)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [INPUT_NAME, "style"] and sess.get_inputs()[0].type == "tensor(uint8)"
    for h, w in SIZES:  # dynamic H and W, odd sizes, batch of 2
        out = sess.run([OUTPUT_NAME], {INPUT_NAME: np.zeros((2, h, w, 3), np.uint8), "style": np.ones(1, np.float32)})[0]
        assert out.shape == (2, h, w, 3) and out.dtype == np.uint8
    assert check_parity(net, path, SIZES) <= 1e-3
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temp file


@pytest.mark.slow
def test_float_export_matches_eager_within_1e4(tmp_path):
    net = tiny_net()
    path = export_onnx(net, tmp_path / "f.onnx", float_io=True)
    assert metadata(path)["fastnst.io"] == FLOAT_IO_CONTRACT
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in SIZES:
        x = torch.rand(1, 3, h, w)
        got = sess.run([OUTPUT_NAME], {sess.get_inputs()[0].name: x.numpy(), "style": np.ones(1, np.float32)})[0]
        with torch.no_grad():
            want = net(x).numpy()
        assert got.shape == want.shape and np.abs(got - want).max() < 1e-4
    check_parity(net, path, SIZES, tol=1e-4)


def test_parity_check_fails_loudly_on_a_different_model(tmp_path):
    path = export_onnx(tiny_net(0), tmp_path / "m.onnx")
    with pytest.raises(ParityError, match="differs"):
        check_parity(tiny_net(1), path, SIZES)


@pytest.mark.slow
def test_export_calibrate_takes_the_int8_calibration_photos_from_the_given_folder(tmp_path, capsys):
    """A one-step run whose training photos are gone: `export --int8` stops looking for them;
    `export --int8 --calibrate FOLDER` calibrates on FOLDER and gets to the quantization check.
    (An untrained tiny net moves more than the 4 levels that check allows, so it refuses to
    write: the int8 model itself is tested in test_quantize.py.)"""
    import shutil

    from PIL import Image

    from fastnst import cli

    def photos(folder, n, seed):  # smooth colour gradients plus a little noise
        rng = np.random.default_rng(seed)
        folder.mkdir()
        y, x = np.mgrid[0:40, 0:48]
        for i in range(n):
            a, b, c = rng.uniform(1, 4, 3)
            img = np.stack([x * a, y * b, (x + y) * c], -1) + rng.normal(0, 10, (40, 48, 3))
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / f"p{i}.png")
        return folder

    Image.fromarray(np.tile(np.array([250, 40, 10], np.uint8), (40, 40, 1))).save(tmp_path / "style.png")
    data, run = photos(tmp_path / "data", 4, 0), tmp_path / "run"
    recipe = tmp_path / "tiny.toml"
    recipe.write_text(f'style_paths = ["{tmp_path / "style.png"}"]\ndata = "{data}"\nrun_dir = "{run}"\n'
                      "image_size = 32\nstyle_size = 40\nbatch_size = 2\nsteps = 1\nworkers = 0\npreview_every = 0\n"
                      "[net]\nchannels = [4, 8, 8]\nres_blocks = 1\n"
                      '[loss]\nvgg = "random"\ncontent_layers = ["relu2_1"]\nstyle_layers = {relu1_1 = 1.0}\n')
    assert cli.main(["train", "--recipe", str(recipe)]) == 0
    shutil.rmtree(data)
    capsys.readouterr()
    assert cli.main(["export", str(run), "--int8", "-o", str(tmp_path / "nocal.onnx")]) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "--calibrate" in err  # the training photos it looked for, and the way out
    out = tmp_path / "int8.onnx"
    assert cli.main(["export", str(run), "--int8", "--calibrate", str(photos(tmp_path / "cal", 6, 1)), "-o", str(out)]) == 2
    assert "int8 quantization moved the output" in capsys.readouterr().err  # calibrated, then checked
    assert not out.exists()


@pytest.mark.slow
def test_multi_style_onnx_matches_torch_for_one_hot_and_blended_weights(tmp_path):
    torch.manual_seed(0)
    net = TransformNet(dataclasses.replace(TINY, n_styles=3)).eval()
    with torch.no_grad():  # distinct styles: every norm's rows differ
        for norm in net.norms():
            norm.weight.add_(torch.randn_like(norm.weight))
            norm.bias.add_(torch.randn_like(norm.bias))
    path = export_onnx(net, tmp_path / "m.onnx")
    check_parity(net, path, SIZES)  # each one-hot and a blend, within one level of 255
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    frame = np.random.default_rng(0).integers(0, 256, (1, 40, 48, 3), dtype=np.uint8)
    outs = [sess.run(None, {INPUT_NAME: frame, "style": w})[0].astype(int) for w in np.eye(3, dtype=np.float32)]
    assert min(np.abs(a - b).mean() for a, b in ((outs[0], outs[1]), (outs[1], outs[2]))) > 1  # the styles differ


@pytest.mark.parametrize("stem", ["stride2", "conv"])  # the interleaved and the folded frame I/O
def test_read_onnx_gives_back_the_weights_and_config(tmp_path, stem):
    cfg = TrainConfig(net=dataclasses.replace(TINY, stem=stem, end_kernel=4 if stem == "stride2" else 3, n_styles=2))
    torch.manual_seed(0)
    net = TransformNet(cfg.net).eval()
    with torch.no_grad():  # trained-like weights: no two tensors alike (the exporter merges equal ones)
        for p in net.parameters():
            p.add_(torch.randn_like(p))
    path = export_onnx(net, tmp_path / "m.onnx", {"fastnst.config": to_json(cfg)})
    back, back_cfg = read_onnx(path)
    assert back_cfg == cfg
    want, got = net.state_dict(), back.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-6, atol=1e-6, msg=k)


def test_read_onnx_refuses_models_it_cannot_read_back(tmp_path):
    net = tiny_net()
    cfg = {"fastnst.config": to_json(TrainConfig(net=TINY))}
    with pytest.raises(UserError, match="not a model exported by fastnst"):
        read_onnx(export_onnx(net, tmp_path / "float.onnx", cfg, float_io=True))
    with pytest.raises(UserError, match="not a model exported by fastnst"):
        read_onnx(export_onnx(net, tmp_path / "bare.onnx"))  # no training config
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(UserError, match="not an ONNX model"):
        read_onnx(tmp_path / "junk.onnx")
