"""The catalogue of shipped models: the ONNX files and model cards in ``fastnst.models`` (no torch)."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from fastnst import UserError


def shipped_dir() -> Path:
    """The folder of the styles shipped with the package (``fastnst.models``: the repo's ``models/``)."""
    return Path(str(importlib.resources.files("fastnst.models")))


def shipped_models() -> dict[str, Path]:
    """Shipped style name -> its ONNX file, sorted by name."""
    return {p.stem: p for p in sorted(shipped_dir().glob("*.onnx"))}


def card_summary(card: Path) -> str:
    """A model card's one-line summary: its ``Summary:`` line, else the first line of text that is
    not a heading, list item, table row, quote or HTML comment ("" when none or no card)."""
    try:
        lines = [line.strip() for line in card.read_text(encoding="utf-8").splitlines()]
    except OSError:
        return ""
    for line in lines:
        if line.lower().startswith("summary:"):
            return line.partition(":")[2].strip()
    return next((line for line in lines if line and not line.startswith(("#", "-", "*", "|", ">", "<!--", "```"))), "")


def find_model(name_or_path: str | os.PathLike) -> Path | None:
    """A model argument -> an ONNX file: an existing path, else a style shipped in ``fastnst.models``;
    None when it is neither (``fastnst.play.model.resolve_model`` says why)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if path.suffix == "" and len(path.parts) == 1:
        return shipped_models().get(path.name)
    return None


def models_or_shipped(names: list[str | os.PathLike] | None) -> list[str | os.PathLike]:
    """``names``, or every shipped model; UserError where there is none."""
    names = names or list(shipped_models().values())
    if not names:
        raise UserError("no shipped models are installed: name a model file (train one with `fastnst train`)")
    return names
