"""The config system: shipped configs, TOML round trip, CLI overrides, errors with suggestions."""

import tomllib

import pytest

from train_app import config as cfg
from train_app.errors import UserError


@pytest.mark.parametrize("name", ["demo", "tinystories-17m", "owt-small", "gpt2-small"])
def test_shipped_configs_load_and_validate(name):
    config = cfg.load(name)
    cfg.validate(config)


def test_tinystories_config_is_the_cs336_base_model():
    c = cfg.load("tinystories-17m")
    m = c.model
    assert (c.tokenizer.vocab_size, m.context_length, m.d_model, m.d_ff) == (10000, 256, 512, 1344)
    assert (m.num_layers, m.num_heads, m.rope_theta) == (4, 16, 10000.0)
    assert c.train.batch_size * c.train.max_steps * m.context_length == 327_680_000
    assert cfg.load("owt-small").tokenizer.vocab_size == 32000


def test_toml_round_trip_keeps_every_value():
    config = cfg.load("demo", {"sample.prompt": 'say "hi"\\\n\tnow \x7f é', "model.d_model": 64})
    config.tokenizer.special_tokens = ["<|endoftext|>", "<pad>"]
    config.optim.eps = 1e-12
    text = cfg.to_toml(config, header="two\nlines")
    assert text.startswith("# two\n# lines\n")
    assert cfg.from_dict(tomllib.loads(text), "round trip") == config


def test_cli_values_take_the_schema_type():
    assert cfg.parse_cli_value("model.d_model", "768") == 768
    assert cfg.parse_cli_value("train.max_steps", "10_000") == 10000
    assert cfg.parse_cli_value("optim.lr", "3e-4") == pytest.approx(3e-4)
    assert cfg.parse_cli_value("model.tie_embeddings", "true") is True
    assert cfg.parse_cli_value("tokenizer.special_tokens", "<a>,<b>") == ["<a>", "<b>"]
    assert cfg.parse_cli_value("tokenizer.special_tokens", '["<a>"]') == ["<a>"]
    with pytest.raises(UserError, match=r"--model.d_model wants int, got 'big'"):
        cfg.parse_cli_value("model.d_model", "big")


def test_overrides_win_over_the_file():
    config = cfg.load("demo", {"model.d_model": 256, "optim.lr": 1e-3})
    assert config.model.d_model == 256 and config.optim.lr == 1e-3
    assert config.model.num_layers == cfg.load("demo").model.num_layers


def test_unknown_key_suggests_the_closest():
    with pytest.raises(UserError, match=r"unknown config key 'model.dmodel'.*'model.d_model'"):
        cfg.load("demo", {"model.dmodel": 3})
    with pytest.raises(UserError, match=r"'train.max_steps'"):
        cfg.load("demo", {"train.max_step": 3})


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("[model]\nd_modle = 64\n")
    with pytest.raises(UserError, match=r"'model.d_modle' in .*mine.toml.*'model.d_model'"):
        cfg.load(str(path))
    path.write_text("[modle]\nd_model = 64\n")
    with pytest.raises(UserError, match=r"'modle.d_model' .*did you mean 'model.d_model'"):
        cfg.load(str(path))
    path.write_text("[model]\nd_model = '64'\n")
    with pytest.raises(UserError, match="must be int"):
        cfg.load(str(path))
    path.write_text("[model\n")
    with pytest.raises(UserError, match="not valid TOML"):
        cfg.load(str(path))


def test_unknown_config_name_lists_the_shipped_ones():
    with pytest.raises(UserError, match=r"no config named 'dmeo' \(did you mean 'demo'\?\)"):
        cfg.find_config("dmeo")
    with pytest.raises(UserError, match="does not exist"):
        cfg.find_config("nowhere/x.toml")


def test_validate_catches_impossible_shapes():
    config = cfg.load("demo", {"model.num_heads": 3})
    with pytest.raises(UserError, match=r"multiple of model\.num_heads"):
        cfg.validate(config)
    config = cfg.load("demo", {"train.batch_size": 10, "train.grad_accum_steps": 4})
    with pytest.raises(UserError, match="grad_accum_steps"):
        cfg.validate(config)


def test_compile_reduce_overhead_is_a_choice_that_needs_a_gpu():
    import torch

    from train_app.device import place

    config = cfg.load("demo", {"system.compile": "reduce-overhead"})
    cfg.validate(config)
    with pytest.raises(
        UserError, match=r"system\.compile must be auto, on, off or reduce-overhead"
    ):
        cfg.validate(cfg.load("demo", {"system.compile": "graphs"}))
    with pytest.raises(UserError, match="reduce-overhead replays CUDA graphs: it needs a GPU"):
        place(config.system, head_dim=16, device=torch.device("cpu"))


def test_incompatibilities_only_count_frozen_tables():
    a = cfg.load("demo")
    b = cfg.load("demo", {"train.max_steps": 99999, "optim.lr": 1.0, "data.cache_dir": "/x"})
    assert cfg.incompatibilities(a, b) == []
    c = cfg.load("demo", {"model.d_model": 64})
    assert cfg.incompatibilities(a, c) == [f"model.d_model: {a.model.d_model} in the run, 64 now"]
