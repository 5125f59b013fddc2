"""Training checkpoints: the format, atomic save, load, and the config a resumed run continues.

A checkpoint (``<run_dir>/checkpoint.pt``) is a dict holding everything needed to continue a
run exactly: model and optimizer state, step, data position, RNG states, the full config, the
VGG source and the precision the run trained in. It is written to a temp file, then renamed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from fastnst import UserError
from fastnst.config import TrainConfig, from_dict, to_dict
from fastnst.learn.nets import TransformNet
from fastnst.play.files import atomic_path

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "fastnst-checkpoint-v1"
CHECKPOINT_NAME = "checkpoint.pt"
# Fields a resumed run may change; anything else must match the checkpoint's config.
RESUMABLE_FIELDS = {"steps", "epochs", "device", "precision", "workers", "checkpoint_every", "preview_every",
                    "log_every", "output", "int8"}
# The machine's, not the run's: a run resumed elsewhere (a GPU box, then a laptop) starts from the
# defaults (device auto) unless the command line gives them again.
MACHINE_FIELDS = ("device", "workers")


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """torch.save to a temp file, then os.replace: a crash never leaves a half-written file."""
    with atomic_path(path) as tmp:
        try:
            torch.save(state, tmp)
        except RuntimeError as e:  # torch reports a failed write (a full disk) as a RuntimeError
            raise OSError(f"cannot write checkpoint {path}: {str(e).splitlines()[0]}") from None
    return path


def run_folder(path: str | os.PathLike) -> Path:
    """A run folder or a checkpoint file -> the run folder."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A run folder or checkpoint file -> the checkpoint dict, or a UserError."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"no fastnst checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path} is not a fastnst checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a fastnst checkpoint")
    return ckpt


def model_file(path: str | os.PathLike) -> Path | None:
    """The ONNX model ``path`` names (a .onnx file, or a shipped name that is not a path here),
    None for a run folder or checkpoint file; UserError if it names nothing."""
    from fastnst.play.runtime import resolve_model

    p = Path(path)
    if p.exists():
        return p if p.suffix.lower() == ".onnx" else None
    return resolve_model(p, what="fastnst run, checkpoint or model")


def load_trained(path: str | os.PathLike) -> dict[str, Any]:
    """A trained net to build on (``--base``, ``--teacher``, ``fastnst export``): a run folder or
    checkpoint file (``load_checkpoint``), or a float ONNX model that fastnst exported, a file or a
    shipped name (``model_file``), whose weights and training config are read back from the file
    (as a dict with "config", "model" and "step" None; no optimizer state, so no resume)."""
    from fastnst.learn.export import read_onnx

    model = model_file(path)
    if model is None:
        return load_checkpoint(path)
    net, cfg = read_onnx(model)
    return {"config": to_dict(cfg), "model": net.state_dict(), "step": None}


def config_of(ckpt: dict[str, Any]) -> TrainConfig:
    return from_dict(TrainConfig, ckpt["config"])


def net_of(ckpt: dict[str, Any]) -> TransformNet:
    """The checkpoint's TransformNet with its weights, in eval mode, on the CPU."""
    net = TransformNet(config_of(ckpt).net)
    net.load_state_dict(ckpt["model"])
    return net.eval()


def resume_config(ckpt: dict[str, Any], overrides: dict[str, Any]) -> TrainConfig:
    """The checkpoint's config with ``overrides`` (flat CLI-style keys; None = not given) applied.
    Only RESUMABLE_FIELDS may change: the rest must match, or the run would not be a continuation."""
    cfg = config_of(ckpt)
    saved = to_dict(cfg)
    cfg = replace(cfg, **{k: getattr(TrainConfig(), k) for k in MACHINE_FIELDS})
    changed = []
    for k, v in overrides.items():
        if v is None or k in RESUMABLE_FIELDS:
            continue
        if isinstance(v, dict):  # a [net] or [loss] table
            changed += [f"{k}.{kk}" for kk, vv in v.items() if vv is not None and saved[k].get(kk) != vv]
        elif saved.get(k) != (tuple(v) if isinstance(v, list) else v):
            changed.append(k)
    if changed:
        raise UserError(f"--resume continues the checkpoint's run and cannot change {', '.join(changed)} "
                        f"(it may change {', '.join(sorted(RESUMABLE_FIELDS))})")
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None and k in RESUMABLE_FIELDS})
