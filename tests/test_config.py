"""Recipes: TOML + CLI overrides -> frozen TrainConfig; unknown keys are an error."""

import dataclasses
import json
from pathlib import Path

import pytest

from fastnst import UserError, cli
from fastnst.config import NET_PRESETS, LossConfig, TrainConfig, load_recipe, read_recipe, to_json
from fastnst.learn.recipe import resolve_train

RECIPES = sorted((Path(__file__).resolve().parents[1] / "train").rglob("*.toml"))


def test_recipe_and_overrides(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('image_size = 128\nsteps = 50\n[net]\nres_blocks = 3\n[loss]\nstyle_weight = 7\n'
                      'style_layers = {relu1_1 = 2.0}\n')
    cfg = load_recipe(recipe, {"steps": 9, "lr": None, "loss": {"tv_weight": 0.5, "style_weight": None}})
    assert (cfg.image_size, cfg.steps, cfg.lr) == (128, 9, TrainConfig.lr)  # flag wins; None keeps the recipe
    assert cfg.net == dataclasses.replace(TrainConfig().net, res_blocks=3)  # a table changes only its keys
    assert cfg.loss.style_weight == 7.0 and isinstance(cfg.loss.style_weight, float)
    assert cfg.loss.style_layers == {"relu1_1": 2.0} and cfg.loss.tv_weight == 0.5
    assert cfg.loss.content_layers == TrainConfig().loss.content_layers  # untouched keys keep the training defaults
    assert cfg.loss.vgg == TrainConfig().loss.vgg


@pytest.mark.parametrize("text, key", [
    ("imagesize = 3\n", "imagesize"),
    ("[net]\nwidth = 3\n", "net.width"),
    ("[loss]\nstyle_wieght = 3\n", "loss.style_wieght"),
])
def test_unknown_keys_are_rejected(tmp_path, text, key):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        load_recipe(recipe)


def test_cli_unknown_key_is_one_line_error_before_training(tmp_path, capsys):
    recipe = tmp_path / "r.toml"
    recipe.write_text("bogus = 1\n")
    code = cli.main(["train", "--recipe", str(recipe), "--style", "x.jpg", "--data", str(tmp_path),
                     "--run-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "bogus" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("recipe", RECIPES, ids=[p.name for p in RECIPES])
def test_shipped_recipes_load_with_every_value_they_set(recipe):
    cfg = json.loads(to_json(load_recipe(recipe)))
    for key, value in read_recipe(recipe).items():
        got = cfg[key]
        if isinstance(value, dict):  # [net], [loss]: only the keys the table names
            value, got = {k: v for k, v in value.items() if k in got}, {k: got[k] for k in value if k in got}
        assert got == value, f"{recipe.name}: {key} is {got!r}, the recipe says {value!r}"


def test_a_partial_loss_table_keeps_the_training_defaults(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text("[loss]\ntv_weight = 2.0\n")
    cfg = load_recipe(recipe)
    assert cfg.loss == dataclasses.replace(LossConfig(), tv_weight=2.0)


def test_a_recipe_names_its_paintings_in_the_current_or_an_older_spelling(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text('style_paths = ["a.jpg", "dir/b.png"]\n')
    cfg = load_recipe(recipe)
    assert cfg.style_paths == ("a.jpg", "dir/b.png") and cfg.style_names == ("a", "b")
    assert cfg.net.n_styles == 2  # the net gets a norm row per painting without being told
    for old in ('style = "a.jpg"', 'styles = ["a.jpg"]'):  # recipes, checkpoints and models from before
        recipe.write_text(old + "\n")
        assert load_recipe(recipe).style_paths == ("a.jpg",)
        assert load_recipe(recipe, {"style_paths": ["c.jpg"]}).style_paths == ("c.jpg",)  # --style replaces them
    recipe.write_text('style_paths = ["a", "b", "c"]\n[net]\nstyles = 3\n')
    assert load_recipe(recipe).net.n_styles == 3
    five = resolve_train(RECIPES[0].parent / "five_styles.toml", {"arch": "johnson"})  # what --arch johnson does
    assert five.net.n_styles == 5 and five.net.channels == NET_PRESETS["johnson"].channels
    recipe.write_text('style = "a.jpg"\nstyle_paths = ["b.jpg"]\n')
    with pytest.raises(UserError, match="give style_paths once"):
        load_recipe(recipe)


def test_net_table_arch_starts_from_that_preset():
    from fastnst.config import NET_PRESETS

    assert TrainConfig().net == NET_PRESETS["fast"]
    cfg = load_recipe(None, {"net": {"arch": "johnson", "res_blocks": 2}})
    assert cfg.net == dataclasses.replace(NET_PRESETS["johnson"], res_blocks=2)
    with pytest.raises(UserError, match="unknown architecture"):
        load_recipe(None, {"net": {"arch": "nope"}})
