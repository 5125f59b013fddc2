"""Training checkpoints: the format, atomic save, load, and the config a resumed run continues.

A checkpoint (``<run_dir>/checkpoint.pt``) is a dict holding everything needed to continue a
run exactly: model and optimizer state, step, data position, RNG states, the full config, the
VGG source and the precision the run trained in, and the SHA-256 of all that (``digest``), which
loading checks. It is written to a temp file, then renamed.
"""

from __future__ import annotations

import hashlib
import io
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


def digest(obj: Any, h: Any = None) -> str:
    """SHA-256 of a checkpoint's contents (nested dicts, lists, tensors, numbers, strings): the same
    for the state saved and the state loaded back, whatever the file's zip layout."""
    h = h or hashlib.sha256()
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            digest(k, h)
            digest(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for v in obj:
            digest(v, h)
    else:
        h.update(f"{type(obj).__name__}:{obj!r};".encode())
    return h.hexdigest()


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """``state`` and its ``digest``, serialised in memory, written to a temp file, then os.replace'd:
    a crash never leaves a half-written file, and a full disk is an OSError like any other write's
    (torch.save straight to the file reports it as a zip writer's RuntimeError)."""
    buf = io.BytesIO()
    torch.save({**state, "digest": digest(state)}, buf)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getbuffer())
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    return path


# What a checkpoint's entries must be: to read its net (export, --base, --teacher), and to continue it.
_ENTRIES = {"model": dict, "config": dict}
_RESUME_ENTRIES = {"step": int, "data_position": int, "optimizer": dict, "rng": dict, "skipped": list}


def run_folder(path: str | os.PathLike) -> Path:
    """A run folder or a checkpoint file -> the run folder."""
    path = Path(path)
    return path if path.is_dir() else path.parent


def load_checkpoint(path: str | os.PathLike, resuming: bool = False) -> dict[str, Any]:
    """A run folder or checkpoint file -> the checkpoint dict, checked whole (its digest) and for the
    entries a net needs, or with ``resuming`` a run; else a UserError that names the file."""
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
    entries = {**_ENTRIES, **(_RESUME_ENTRIES if resuming else {})}
    if bad := [k for k, kind in entries.items() if not isinstance(ckpt.get(k), kind)]:
        raise UserError(f"checkpoint {path} is damaged: its {', '.join(bad)} entry is missing or wrong")
    saved = ckpt.pop("digest", None)  # absent in checkpoints from before the digest
    if saved is not None and saved != digest(ckpt):
        raise UserError(f"checkpoint {path} is damaged: its contents do not match their checksum")
    return ckpt


def model_file(path: str | os.PathLike) -> Path | None:
    """The ONNX model ``path`` names (a .onnx file, or a shipped name that is not a path here),
    None for a run folder or checkpoint file; UserError if it names nothing."""
    from fastnst.play.model import resolve_model

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


def resume_config(ckpt: dict[str, Any], overrides: dict[str, Any], run_dir: str | os.PathLike) -> TrainConfig:
    """The checkpoint's config with ``overrides`` (flat CLI-style keys; None = not given) applied,
    continuing in ``run_dir`` (the folder the checkpoint was found in, or a new one for a copy): the
    paths the checkpoint recorded (its run folder, its model file) are not written to, since the
    run may have been copied or moved since. Only RESUMABLE_FIELDS may change: the rest must
    match, or the run would not be a continuation."""
    cfg = config_of(ckpt)
    saved = to_dict(cfg)
    cfg = replace(cfg, **{k: getattr(TrainConfig(), k) for k in (*MACHINE_FIELDS, "output")}, run_dir=str(run_dir))
    changed = []
    for k, v in overrides.items():
        if v is None or k in RESUMABLE_FIELDS or k == "run_dir":
            continue
        if isinstance(v, dict):  # a [net] or [loss] table
            changed += [f"{k}.{kk}" for kk, vv in v.items() if vv is not None and saved[k].get(kk) != vv]
        elif saved.get(k) != (tuple(v) if isinstance(v, list) else v):
            changed.append(k)
    if changed:
        raise UserError(f"a resumed run continues the checkpoint's run and cannot change {', '.join(changed)} "
                        f"(it may change {', '.join(sorted(RESUMABLE_FIELDS))})")
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None and k in RESUMABLE_FIELDS})
