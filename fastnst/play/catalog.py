"""The models a command plays when none is named (every shipped one), and `fastnst models`' listing."""

from __future__ import annotations

import os

from fastnst import UserError
from fastnst.play.runtime import StyleModel, card_summary, shipped_dir, shipped_models


def models_or_shipped(names: list[str | os.PathLike] | None) -> list[str | os.PathLike]:
    """``names``, or every shipped model; UserError where there is none."""
    names = names or list(shipped_models().values())
    if not names:
        raise UserError("no shipped models are installed: pass --model M.onnx (train one with `fastnst train`)")
    return names


def model_listing(names: list[str | os.PathLike] | None = None) -> list[str]:
    """One line per model (name, size, its card's summary), and one naming the styles of a multi-style
    model; by default the shipped models, and where their files and cards are."""
    paths = names or list(shipped_models().values())
    if not paths:
        return [f"no shipped models are installed (looked in {shipped_dir()})"]
    models = [StyleModel(p, "cpu", threads=1) for p in paths]
    width = max(len(m.path.stem) for m in models)
    lines = []
    for m in models:
        summary = card_summary(m.path.with_suffix(".md")) or "(no model card summary)"
        lines.append(f"{m.path.stem:<{width}}  {m.path.stat().st_size / 1e6:5.1f} MB  {summary}")
        if len(m.styles) > 1:
            lines.append(f"{'':<{width}}  {len(m.styles)} styles: {', '.join(m.styles)}")
    if not names:
        lines.append(f"model files and cards (NAME.md): {shipped_dir()}")
    return lines
