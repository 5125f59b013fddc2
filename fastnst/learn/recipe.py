"""What `fastnst train` trains: a recipe, the values given on top of it, a base to add styles to or
retrain styles of, or a run to resume, resolved to one checked ``TrainConfig``.

``flags`` holds TrainConfig fields by name (None: not given, the recipe's or the default stays),
a ``loss`` table, and ``arch`` (a net preset), ``add`` (paintings to add to the base) and
``style_images`` ({base style name: painting}, where the base's paintings have moved).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from fastnst import UserError
from fastnst.config import TrainConfig, from_dict, load_recipe, merge, preset, read_recipe, to_dict

log = logging.getLogger(__name__)

# Adding a style: a short run from the nearest style, batch 2 at a high lr decaying to 0, sized to add
# a painting on a laptop CPU while one waits (docs/training.md).
ADD_STYLE_STEPS, ADD_STYLE_LR, ADD_STYLE_BATCH = 60, 6e-2, 2
# Retraining a trained style: it starts converged, so fewer, gentler steps than a new one.
TUNE_STYLE_STEPS, TUNE_STYLE_LR = 270, 1e-2
_EXTRAS = ("arch", "add", "style_images")


def overrides_of(flags: dict[str, Any]) -> dict[str, Any]:
    """``flags`` -> config overrides: ``arch`` as its whole preset but the style count (that follows
    the paintings), and whichever of ``steps`` and ``epochs`` is given counting the run."""
    out = {k: v for k, v in flags.items() if k not in _EXTRAS}
    if flags.get("steps") is not None:
        out["epochs"] = 0
    if flags.get("epochs") is not None:
        out["steps"] = 0
    if flags.get("arch") is not None:
        out["net"] = {k: v for k, v in asdict(preset(flags["arch"])).items() if k != "n_styles"}
    return out


def base_run(base: str) -> str:
    """A ``base`` that names a recipe (``.toml``) -> the run folder that recipe writes; else ``base``."""
    if not base.lower().endswith(".toml"):
        return base
    return read_recipe(base).get("run_dir", TrainConfig().run_dir)


def resolve_train(recipe: str | Path | None = None, flags: dict[str, Any] | None = None, resume: str | None = None,
                  base_config: TrainConfig | None = None) -> TrainConfig:
    """The config `fastnst train` runs: ``recipe`` (a TOML file) with ``flags`` on top; with ``resume``
    (a run folder or checkpoint) the checkpoint's config, continuing in its folder; with a ``base`` the
    base's config and styles (``base_styles``). ``base_config`` stands for the base's trained config
    where that run is not at hand (a recipe's stage that has not run)."""
    flags = flags or {}
    overrides = overrides_of(flags)
    if resume and recipe:
        raise UserError("a resumed run takes its config from the checkpoint, not a recipe")
    data = read_recipe(recipe) if recipe else {}
    if str(data.get("base", "")).lower().endswith(".toml"):  # a recipe's base recipe sits beside it
        data["base"] = str(Path(recipe).parent / data["base"])
    if flags.get("add") or overrides.get("tune") or overrides.get("base") or flags.get("style_images") \
            or data.get("base"):
        return base_styles(merge(data, overrides), flags.get("add") or (), flags.get("style_images") or {},
                           resume, base_config)
    if resume:
        from fastnst.learn.checkpoint import load_checkpoint, resume_config, run_folder

        # the run lives where its checkpoint is, never at the folder its config recorded
        return resume_config(load_checkpoint(resume, resuming=True), overrides,
                             overrides.get("run_dir") or run_folder(resume))
    return load_recipe(data, overrides)


def base_styles(overrides: dict[str, Any], add: tuple[str, ...] = (), style_images: dict[str, str] | None = None,
                resume: str | None = None, base_config: TrainConfig | None = None) -> TrainConfig:
    """A ``base`` (run or model) with paintings ``add``ed and/or styles ``tune``d: the base's training
    config, its styles plus the new ones, with ``overrides`` (the recipe's and the flags') on top."""
    from fastnst.learn.checkpoint import config_of, load_trained, model_file, run_folder

    base_path, add, tune = base_run(overrides.get("base") or ""), tuple(add), tuple(overrides.get("tune") or ())
    if not base_path:
        raise UserError("adding or tuning a style needs a base: the trained run or model to build on")
    if not add and not tune:
        raise UserError("a base goes with a painting to add or a style to tune")
    if overrides.get("style_paths") or resume:
        raise UserError("adding or tuning a style takes the styles from the base; give no paintings and no resume")
    model = None if base_config else model_file(base_path)
    base = base_config or config_of(load_trained(base_path))
    style_images = style_images or {}
    if bad := [n for n in style_images if n not in base.style_names]:
        raise UserError(f"style image {bad[0]!r}: give NAME=IMAGE for a style of the base "
                        f"({', '.join(base.style_names)})")
    styles = (*(style_images.get(n, p) for n, p in zip(base.style_names, base.style_paths)), *add)
    # the names stay the base's whatever the files are called
    names = (*base.style_names, *(Path(s).stem for s in add)) if base.names or style_images else ()
    if model and not overrides.get("data"):  # a model file does not bring its training photos
        from fastnst.learn.data import BUILTIN_PHOTOS

        log.info("no photos given: training on the %d built-in photos (%s)", len(list(BUILTIN_PHOTOS.glob("*.jpg"))),
                 BUILTIN_PHOTOS)
        overrides = {**overrides, "data": str(BUILTIN_PHOTOS)}
    # A run folder and model of its own (never the base's): by default <base run>+<new or tuned styles>,
    # under runs/ for a base that is a model file or a shipped name.
    run = Path("runs") / model.stem if model else run_folder(base_path)
    run_dir = overrides.get("run_dir") or f"{run}+{'+'.join((*(Path(s).stem for s in add), *tune))}"
    # Not the base's: its machine settings, its length and learning rate and, with other photos, its extra
    # folders, held-out count and split. Values given win.
    fresh = {k: getattr(TrainConfig(), k) for k in ("device", "workers", "precision")
             + (("extra_data", "holdout", "data_split") if overrides.get("data") else ())}
    if add:
        fresh.update(steps=ADD_STYLE_STEPS, lr=ADD_STYLE_LR, lr_schedule="cosine", batch_size=ADD_STYLE_BATCH)
    else:
        fresh.update(steps=TUNE_STYLE_STEPS, lr=TUNE_STYLE_LR)
    fresh.update(steps=0 if overrides.get("epochs") else fresh["steps"], epochs=0)  # where neither is given
    overrides = {**overrides, "run_dir": run_dir, "output": overrides.get("output") or ""}
    overrides.update({k: v for k, v in fresh.items() if overrides.get(k) is None})
    cfg = from_dict(type(base), merge(to_dict(base), {k: v for k, v in overrides.items() if k != "base"}))
    return replace(cfg, style_paths=styles, names=names, net=replace(cfg.net, n_styles=len(styles)), base=base_path,
                   tune=tune, teacher="")
