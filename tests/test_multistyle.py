"""Multi-style nets: conditional instance norm is instance norm at N=1, one-hot weights pick a
style, training balances styles, and --add-style trains a new style without touching the others."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import photos_and_paintings
from fastnst import cli
from fastnst.config import LossConfig, NetConfig, TrainConfig
from fastnst.learn.checkpoint import config_of, load_checkpoint, net_of
from fastnst.learn.nets import CondInstanceNorm, TransformNet
from fastnst.learn.recipe import ADD_STYLE_LR, ADD_STYLE_STEPS, resolve_train
from fastnst.learn.train import train

TINY = NetConfig(channels=(4, 8, 8), res_blocks=1)
TINY_LOSS = LossConfig(vgg="random", content_layers=("relu2_1",), style_layers={"relu1_1": 1.0, "relu2_1": 1.0},
                       style_weight=10.0)


def _distinct_styles(net):
    with torch.no_grad():
        for norm in net.norms():
            norm.weight.add_(torch.randn_like(norm.weight))
            norm.bias.add_(torch.randn_like(norm.bias))
    return net.eval()


def test_conditional_norm_with_one_style_is_affine_instance_norm():
    torch.manual_seed(0)
    ref = torch.nn.InstanceNorm2d(6, affine=True)
    with torch.no_grad():
        ref.weight.copy_(torch.randn(6))
        ref.bias.copy_(torch.randn(6))
    cin = CondInstanceNorm(6, 1)
    cin.load_state_dict(ref.state_dict())  # (C,) parameters of a single-style checkpoint
    x = torch.randn(3, 6, 9, 11)
    torch.testing.assert_close(cin(x, torch.ones(1, 1)), ref(x))


def test_single_style_checkpoint_weights_load_into_the_n1_net():
    torch.manual_seed(0)
    net = _distinct_styles(TransformNet(TINY))
    old = {k: (v[0] if k.endswith((".weight", ".bias")) and v.dim() == 2 and v.shape[0] == 1 else v)
           for k, v in net.state_dict().items()}  # norm parameters as (C,), as before multi-style
    assert any(v.dim() == 1 and k.endswith("norm.weight") for k, v in old.items())
    loaded = TransformNet(TINY)
    loaded.load_state_dict(old)
    x = torch.rand(2, 3, 32, 40)
    assert torch.equal(loaded.eval()(x), net(x))


def test_one_hot_weights_give_each_style_its_own_output():
    torch.manual_seed(0)
    multi = _distinct_styles(TransformNet(replace(TINY, n_styles=3)))
    x = torch.rand(2, 3, 32, 40)
    outs = []
    for i in range(3):  # a one-style net holding style i's norm rows and the shared trunk
        single = TransformNet(TINY)
        single.load_state_dict({k: v[i:i + 1] if v.dim() == 2 and v.shape[0] == 3 else v
                                for k, v in multi.state_dict().items()})
        want = single.eval()(x)
        got = multi(x, torch.eye(3)[i:i + 1])
        torch.testing.assert_close(got, want)
        outs.append(got)
    assert (outs[0] - outs[1]).abs().mean() > 1e-3  # the styles differ
    # per-sample weights: sample b gets style b
    torch.testing.assert_close(multi(x, torch.eye(3)[:2]), torch.cat([outs[0][:1], outs[1][1:]]))


@pytest.fixture
def data(tmp_path):
    return photos_and_paintings(tmp_path, 6)


@pytest.mark.slow
def test_two_styles_train_balanced_and_log_each(data, tmp_path):
    folder, (red, blue, _) = data
    cfg = TrainConfig(style_paths=(red, blue), data=str(folder), image_size=32, style_size=40, batch_size=2, steps=3,
                      workers=0, log_every=1, preview_every=0, run_dir=str(tmp_path / "run"),
                      net=replace(TINY, n_styles=2), loss=TINY_LOSS)
    onnx_path = train(cfg).onnx
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(set(r["style_by_name"]) == {"red", "blue"} for r in rows)  # batch of 2: one sample each
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    assert json.loads(meta["fastnst.styles"]) == ["red", "blue"] and meta["fastnst.style"] == "run"


def _two_style_base(folder, red, blue, tmp_path):
    """The config of a tiny two-style run to build on, 2 steps, in tmp_path/base."""
    return TrainConfig(style_paths=(red, blue), data=str(folder), image_size=32, style_size=40, batch_size=2, steps=2,
                       workers=0, preview_every=0, run_dir=str(tmp_path / "base"), net=replace(TINY, n_styles=2),
                       loss=TINY_LOSS)


@pytest.mark.slow
def test_add_style_trains_only_the_new_style(data, tmp_path):
    folder, (red, blue, green) = data
    base = _two_style_base(folder, red, blue, tmp_path)
    train(base, export=False)
    assert cli.main(["train", "--add-style", green, "--base", base.run_dir, "--steps", "3", "--preview-every", "1",
                     "--add-from", "mean", "--run-dir", str(tmp_path / "more"), "-o", str(tmp_path / "more.onnx")]) == 0
    before, after = (load_checkpoint(tmp_path / d) for d in ("base", "more"))
    assert config_of(after).style_names == ("red", "blue", "green") and config_of(after).net.n_styles == 3
    old, new = net_of(before), net_of(after)
    x = torch.rand(2, 3, 32, 40)
    for i in range(2):  # the base styles are bit-identical
        assert torch.equal(old(x, torch.eye(2)[i:i + 1]), new(x, torch.eye(3)[i:i + 1]))
    start = torch.stack([n.weight[:2].mean(0) for n in old.norms()[:1]])  # the new style starts at the mean
    assert not torch.equal(new.norms()[0].weight[2], start[0])  # ... and trained away from it
    assert (tmp_path / "more.onnx").is_file()
    # The previews show the new style (the base's are frozen and would not change).
    first, last = (np.asarray(Image.open(tmp_path / "more" / f"preview_00000{i}.png")) for i in (1, 3))
    assert not np.array_equal(first, last)
    # Without --run-dir and -o, a folder and model of its own; never the base's.
    base_files = {p.name: p.read_bytes() for p in Path(base.run_dir).iterdir()}
    assert cli.main(["train", "--add-style", green, "--base", base.run_dir, "--steps", "1"]) == 0
    assert {p.name: p.read_bytes() for p in Path(base.run_dir).iterdir()} == base_files
    assert (tmp_path / "base+green" / "base+green.onnx").is_file()
    assert cli.main(["train", "--add-style", green, "--base", base.run_dir, "--steps", "1",
                     "--run-dir", base.run_dir]) == 2


@pytest.mark.slow
def test_tune_style_retrains_one_style_from_where_it_was(data, tmp_path):
    folder, (red, blue, green) = data
    base = _two_style_base(folder, red, blue, tmp_path)
    train(base, export=False)
    ckpt = load_checkpoint(base.run_dir)
    ckpt["model"] = _distinct_styles(net_of(ckpt)).state_dict()  # rows far from their mean
    torch.save(ckpt, tmp_path / "base.pt")
    # From a recipe (base, tune and the loss to tune with), flags on top.
    recipe = tmp_path / "steady.toml"
    recipe.write_text(f'base = "{tmp_path / "base.pt"}"\ntune = ["blue"]\nsteps = 2\n[loss]\nstability_weight = 10.0\n')
    assert cli.main(["train", "--recipe", str(recipe), "--lr", "1e-5", "--run-dir", str(tmp_path / "tuned"),
                     "-o", str(tmp_path / "tuned.onnx")]) == 0
    cfg = config_of(load_checkpoint(tmp_path / "tuned"))
    assert (cfg.tune, cfg.style_names, cfg.steps, cfg.loss.stability_weight) == (("blue",), ("red", "blue"), 2, 10.0)
    old, new = (net_of(load_checkpoint(tmp_path / d)) for d in ("base.pt", "tuned"))
    new_state = new.state_dict()
    norms = {name for name, m in new.named_modules() if isinstance(m, CondInstanceNorm)}
    for name, o in old.state_dict().items():  # the trunk is bit-identical
        assert name.rpartition(".")[0] in norms or torch.equal(o, new_state[name])
    for o, n in zip(old.norms(), new.norms()):
        for p, q in ((o.weight, n.weight), (o.bias, n.bias)):
            assert torch.equal(p[0], q[0])  # red: bit-identical
            # blue moved, from its own trained values (2 Adam steps of lr 1e-5), not from the styles' mean
            assert not torch.equal(p[1], q[1]) and (p[1] - q[1]).abs().max() < 3e-5
            assert (p[1] - p.mean(0)).abs().max() > 1e-2
    assert (tmp_path / "tuned.onnx").is_file()
    for bad in (["--tune-style", "mauve", "--base", base.run_dir], ["--tune-style", "blue"],
                ["--base", base.run_dir], ["--tune-style", "blue", "--base", base.run_dir, "--style", green]):
        assert cli.main(["train", *bad, "--steps", "1", "--run-dir", str(tmp_path / "bad")]) == 2


@pytest.mark.slow
def test_add_style_to_an_exported_model_without_its_paintings(data, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    folder, (red, blue, green) = data
    base = replace(_two_style_base(folder, red, blue, tmp_path), holdout=2, device="cpu")
    model = train(base).onnx
    for painting in (red, blue):  # a shipped model's paintings are not at hand
        Path(painting).unlink()
    photos = tmp_path / "mine"
    photos.mkdir()
    for i in range(3):
        Image.effect_noise((40, 40), 30 + i).convert("RGB").save(photos / f"q{i}.png")
    out = tmp_path / "more.onnx"
    assert cli.main(["train", "--add-style", green, "--base", str(model), "--data", str(photos), "--steps", "2",
                     "--run-dir", str(tmp_path / "more"), "-o", str(out)]) == 0
    cfg = config_of(load_checkpoint(tmp_path / "more"))
    assert cfg.style_names == ("red", "blue", "green") and cfg.base == str(model)
    assert (cfg.data, cfg.holdout, cfg.extra_data, cfg.lr) == (str(photos), 0, (), ADD_STYLE_LR)  # not the base's
    frame = np.random.default_rng(0).integers(0, 256, (1, 40, 48, 3), dtype=np.uint8)
    run = lambda path, w: ort.InferenceSession(str(path)).run(None, {"frames": frame, "style": np.float32(w)})[0]
    for i in range(2):  # the base styles are bit-identical to the base model's
        assert np.array_equal(run(out, np.eye(3)[i]), run(model, np.eye(2)[i]))
    assert not np.array_equal(run(out, np.eye(3)[2]), run(model, [0.5, 0.5]))  # the new style trained
    assert cli.main(["train", "--add-style", green, "--base", str(tmp_path / "none.onnx"), "--data", str(photos)]) == 2
    short = resolve_train(flags={"add": [green], "base": str(model), "data": str(folder)})  # no steps: a short run
    assert (short.steps, short.epochs, short.lr, short.holdout) == (ADD_STYLE_STEPS, 0, ADD_STYLE_LR, 0)
    assert short.run_dir == str(Path("runs") / f"{Path(model).stem}+green")


@pytest.mark.slow
def test_export_keeps_renames_and_reorders_styles_bit_identically(data, tmp_path, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    folder, paths = data
    cfg = TrainConfig(style_paths=tuple(paths), data=str(folder), image_size=32, style_size=40, batch_size=3, steps=2,
                      workers=0, preview_every=0, run_dir=str(tmp_path / "run"), net=replace(TINY, n_styles=3),
                      loss=TINY_LOSS)
    full = train(cfg).onnx
    out = tmp_path / "two.onnx"
    assert cli.main(["export", cfg.run_dir, "--styles", "green,red", "--rename", "green=lime", "-o", str(out)]) == 0
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["fastnst.styles"]) == ["lime", "red"]
    frame = np.random.default_rng(0).integers(0, 256, (1, 40, 48, 3), dtype=np.uint8)
    run = lambda path, w: ort.InferenceSession(str(path)).run(None, {"frames": frame, "style": np.float32(w)})[0]
    assert np.array_equal(run(out, [1, 0]), run(full, [0, 0, 1]))  # green, now lime
    assert np.array_equal(run(out, [0, 1]), run(full, [1, 0, 0]))  # red
    for bad in (["--styles", "mauve"], ["--rename", "red"], ["--rename", "red=blue"]):
        assert cli.main(["export", cfg.run_dir, *bad, "-o", str(tmp_path / "x.onnx")]) == 2
    # The names live in the model's config: a painting added to it, and that run re-exported, keep them.
    blue = next(p for p in paths if Path(p).stem == "blue")
    more = tmp_path / "more.onnx"
    assert cli.main(["train", "--add-style", blue, "--base", str(out), "--data", str(folder), "--steps", "1",
                     "--run-dir", str(tmp_path / "more"), "-o", str(more)]) == 0
    assert cli.main(["export", str(tmp_path / "more"), "--styles", "blue,lime", "-o", str(tmp_path / "x.onnx")]) == 0
    for model, names in ((more, ["lime", "red", "blue"]), (tmp_path / "x.onnx", ["blue", "lime"])):
        assert json.loads({p.key: p.value for p in onnx.load(str(model)).metadata_props}["fastnst.styles"]) == names
    # One style out of a model: named after it by default; never written over the model it reads.
    monkeypatch.chdir(tmp_path)
    assert cli.main(["export", str(out), "--styles", "lime"]) == 0 and (tmp_path / "lime.onnx").is_file()
    before = out.read_bytes()
    assert cli.main(["export", str(out), "--styles", "red", "-o", str(out)]) == 2 and out.read_bytes() == before
