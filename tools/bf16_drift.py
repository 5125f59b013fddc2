"""How far a trained net's bf16 training step is from its fp32 one: one fixed batch of the run's
own crops (one per style), the loss terms and the gradient of the net's weights, computed in fp32,
in bf16 for VGG and the net (how `fastnst train` ran until 2026-11-27) and in bf16 for VGG only
(how it runs now). Prints each bf16 variant's loss terms against fp32's and the cosine between
its gradient and fp32's.

    python tools/bf16_drift.py models/twelve_styles.onnx runs/twelve_styles_h4/checkpoint.pt

Run it from the directory the run was trained from (the recipe's photo and painting paths).
"""

from __future__ import annotations

import argparse

import torch

from fastnst.learn.checkpoint import config_of, load_trained, net_of
from fastnst.learn.data import CropDataset, open_dataset, to_tensor
from fastnst.learn.device import autocast
from fastnst.learn.losses import PerceptualLoss
from fastnst.play.images import load_image

CPU = torch.device("cpu")
VARIANTS = {"fp32": (False, False), "bf16, net too": (True, True), "bf16, VGG only": (True, False)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="run folders, checkpoints or fastnst ONNX models")
    p.add_argument("--seed", type=int, default=123, help="which crops")
    a = p.parse_args()
    for path in a.models:
        ckpt = load_trained(path)
        cfg = config_of(ckpt)
        styles = [to_tensor(load_image(s, cfg.style_size, "style image"))[None] for s in cfg.style_paths]
        source, _ = open_dataset(cfg.data, cfg.data_split, holdout=cfg.holdout, extra=cfg.extra_data)
        crops = CropDataset(source, cfg.image_size, a.seed)
        n = cfg.net.n_styles
        x = torch.stack([crops[i][0] for i in range(max(n, 4))]).contiguous(memory_format=torch.channels_last)
        style = torch.nn.functional.one_hot(torch.arange(len(x)) % n, n).float()  # (B, N)
        ploss = PerceptualLoss.from_config(cfg.loss, styles).to(memory_format=torch.channels_last)
        got = {}
        for name, (vgg_bf16, net_bf16) in VARIANTS.items():
            net = net_of(ckpt).train().to(memory_format=torch.channels_last)
            with autocast(CPU, "bf16" if net_bf16 else "fp32"):
                out = net(x, style)
            with autocast(CPU, "bf16" if vgg_bf16 else "fp32"):
                losses = ploss(out, ploss.content_targets(x), None, style)
            losses["total"].backward()
            grad = torch.cat([q.grad.flatten() for q in net.parameters() if q.grad is not None])
            got[name] = ({k: losses[k].item() for k in ("content", "style", "total")}, grad)
        ref, ref_grad = got["fp32"]
        print(f"{path} (step {ckpt.get('step')}, {len(x)} crops of {cfg.image_size} px)")
        for name in list(VARIANTS)[1:]:
            terms, grad = got[name]
            rel = ", ".join(f"{k} {terms[k] / ref[k] - 1:+.2%}" for k in terms)
            cos = torch.nn.functional.cosine_similarity(grad, ref_grad, dim=0).item()
            print(f"  {name:15s}: {rel} against fp32; gradient cosine {cos:.4f}")


if __name__ == "__main__":
    main()
