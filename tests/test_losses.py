"""Perceptual losses against hand-computed cases, and the PerceptualLoss wiring."""

import pytest
import torch

from fastnst.learn.losses import PerceptualLoss, content_loss, gram_matrix, style_loss, tv_loss
from fastnst.learn.vgg import VGGEncoder


@pytest.fixture(autouse=True)
def no_tf32():
    """Exact float32 matmuls for the hand-computed cases (TF32 would round on GPUs)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def test_gram_matrix_hand_computed():
    # C=2 channels, H=1, W=2: rows f0 = (1, 2), f1 = (3, 4)
    feats = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # (1, 2, 1, 2)
    # F F^T = [[1+4, 3+8], [3+8, 9+16]], normalised by C*H*W = 4
    want = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    torch.testing.assert_close(gram_matrix(feats), want)


def test_gram_matrix_batch_and_no_in_place():
    feats = torch.randn(3, 4, 5, 6)
    before = feats.clone()
    g = gram_matrix(feats)
    assert g.shape == (3, 4, 4)
    torch.testing.assert_close(g[1], feats[1].reshape(4, 30) @ feats[1].reshape(4, 30).T / 120)
    torch.testing.assert_close(feats, before)


def test_tv_loss_hand_computed():
    img = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])  # (1, 1, 2, 2)
    # vertical diffs (2-0, 4-1) -> mean of squares 6.5; horizontal (1-0, 4-2) -> 2.5
    torch.testing.assert_close(tv_loss(img), torch.tensor(9.0))
    assert tv_loss(torch.full((1, 3, 8, 8), 0.3)).item() == 0.0


def test_content_and_style_loss_hand_computed():
    a, b = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    torch.testing.assert_close(content_loss(a, b), torch.tensor(30.0 / 4))
    grams = {"x": torch.ones(1, 2, 2), "y": torch.zeros(1, 2, 2)}
    targets = {"x": torch.zeros(1, 2, 2), "y": torch.full((1, 2, 2), 2.0)}
    # layer x: mean sq diff 1, weight 0.5; layer y: mean sq diff 4, weight 2
    torch.testing.assert_close(style_loss(grams, targets, {"x": 0.5, "y": 2.0}), torch.tensor([8.5]))


def _loss(styles, blend=None, weights=(1.0, 1.0, 0.0)):
    torch.manual_seed(0)
    enc = VGGEncoder(["relu1_1", "relu2_1", "relu2_2"], weights=None)
    c, s, tv = weights
    return PerceptualLoss(enc, styles, content_layers=["relu2_2"], style_layers={"relu1_1": 1.0, "relu2_1": 0.5},
                          content_weight=c, style_weight=s, tv_weight=tv, style_blend=blend)


def test_perceptual_loss_zero_at_its_own_targets():
    style, content = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    crit = _loss([style])
    assert crit.style_targets()["relu1_1"].shape == (1, 64, 64)
    assert "gram_relu2_1" in dict(crit.named_buffers())
    on_style = crit(style, crit.content_targets(content))
    assert on_style["style"].item() == pytest.approx(0.0, abs=1e-9)
    assert on_style["content"].item() > 0
    on_content = crit(content, crit.content_targets(content))
    assert on_content["content"].item() == pytest.approx(0.0, abs=1e-9)
    assert on_content["style"].item() > 0


def test_perceptual_loss_total_is_weighted_sum_and_broadcasts_over_batch():
    style, x = torch.rand(1, 3, 32, 32), torch.rand(2, 3, 32, 32)
    crit = _loss([style], weights=(2.0, 3.0, 5.0))
    out = crit(x, crit.content_targets(torch.rand(2, 3, 32, 32)))
    torch.testing.assert_close(out["total"], 2 * out["content"] + 3 * out["style"] + 5 * out["tv"])
    torch.testing.assert_close(out["tv"], tv_loss(x))


def test_style_blend_mixes_gram_targets():
    s1, s2 = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    one, two = _loss([s1]), _loss([s2])
    mix = _loss([s1, s2], blend=[3.0, 1.0])  # normalised to 0.75 / 0.25
    for layer in ("relu1_1", "relu2_1"):
        want = 0.75 * one.style_targets()[layer] + 0.25 * two.style_targets()[layer]
        torch.testing.assert_close(mix.style_targets()[layer], want)
    with pytest.raises(ValueError):
        _loss([s1, s2], blend=[1.0])
