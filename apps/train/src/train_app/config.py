"""The run configuration: one dataclass per TOML table, loaded from a file plus CLI overrides.

A config is read in three layers, each overriding the last:

    1. the defaults written in the dataclasses below,
    2. a TOML file (`--config demo` names a shipped one in train_app/configs/, or give a path),
    3. dotted command-line overrides: `--model.d_model 768 --train.max_steps 5000`.

Every key is checked against the schema: an unknown key is an error that suggests the closest
known one, and a value of the wrong type is an error naming the key. The fully resolved config is
written to `<run>/config.toml` (by `to_toml`, a small writer for the subset of TOML used here), so
a run directory always says exactly what produced it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from train_app.errors import UserError

# ----------------------------------------------------------------------------- the schema


@dataclass
class DataConfig:
    # "builtin": Python's own documentation (pydoc_data.topics), always present, no network.
    # "tinystories" | "owt": the CS336 files, downloaded once into the cache directory.
    # Anything else is a path: a UTF-8 text file, or a directory of .txt files.
    source: str = "builtin"
    val_fraction: float = 0.1  # share of the documents held out (when the source has no split)
    max_bytes: int = 0  # read at most this many bytes of training text (0: all of it)
    cache_dir: str = ""  # where downloads live ("": $LM_CACHE_DIR or ~/.cache/lm-from-scratch)


@dataclass
class TokenizerConfig:
    vocab_size: int = 2048  # includes the 256 byte tokens and the special tokens
    special_tokens: list[str] = field(default_factory=lambda: ["<|endoftext|>"])
    train_bytes: int = 20_000_000  # BPE learns its merges from at most this much training text


@dataclass
class ModelConfig:
    # vocab_size is not here: it is the tokenizer's, read from <run>/tokenizer/.
    context_length: int = 128
    d_model: int = 128
    num_layers: int = 4
    num_heads: int = 4
    d_ff: int = 384  # about 8/3 d_model (SwiGLU keeps the FFN's parameter count), multiple of 64
    rope_theta: float = 10000.0
    norm: str = "pre"  # "pre" | "post" | "none" (ablations from CS336)
    ffn: str = "swiglu"  # "swiglu" | "silu"
    pos: str = "rope"  # "rope" | "nope"
    tie_embeddings: bool = False


@dataclass
class TrainConfig:
    # Names follow trainer.TrainConfig, which these values are handed to.
    max_steps: int = 1000  # optimizer steps
    batch_size: int = 32  # sequences per optimizer step, summed over processes and micro-steps
    grad_accum_steps: int = 1  # micro-steps per optimizer step: the knob for out-of-memory errors
    max_grad_norm: float = 1.0  # clip the global L2 norm of the gradient to this (0: no clipping)
    eval_interval: int = 100  # steps between validation losses (and one at the end)
    eval_batches: int = 8  # batches averaged per validation loss
    log_interval: int = 10  # steps between train-loss records in metrics.jsonl
    checkpoint_interval: int = 500  # steps between checkpoints (and one at the end, and on Ctrl-C)
    keep_checkpoints: int = 3  # older step_*.safetensors are deleted
    seed: int = 0  # model init, data order, validation split


@dataclass
class OptimConfig:
    lr: float = 3e-3  # peak learning rate, reached after warmup
    min_lr: float = 3e-4  # the cosine schedule ends here, at train.max_steps
    warmup_steps: int = 50
    weight_decay: float = 0.1  # decoupled (AdamW); only on matrices, never on norm gains
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8


@dataclass
class SystemConfig:
    device: str = "auto"  # "auto" (cuda if present) | "cpu" | "cuda" | "cuda:1" ...
    precision: str = (
        "auto"  # "auto" (bf16 autocast on CUDA, fp32 on CPU) | "bf16" | "fp16" | "fp32"
    )
    compile: str = "auto"  # torch.compile: "auto" (on for CUDA) | "on" | "off" |
    #                        "reduce-overhead" (on, the forward and backward as CUDA graphs)
    attention: str = "auto"  # "auto": on CUDA the faster of Triton FlashAttention and SDPA
    #                          at the run's shape (timed at start-up), else torch SDPA |
    #                          "flash" | "sdpa" | "naive" (nn_core's own einsum + softmax)
    threads: int = 0  # CPU threads for torch (0: torch's default)


@dataclass
class SampleConfig:
    prompt: str = "The"
    max_new_tokens: int = 200
    temperature: float = 0.8
    top_p: float = 0.95


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    system: SystemConfig = field(default_factory=SystemConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)


# Tables whose values decide what is in a run directory's tokenizer/ and data/ and the shape of
# its checkpoints: a run directory made with other values is incompatible (see `incompatibilities`).
FROZEN_TABLES = ("data", "tokenizer", "model")
# ...except these, which only say where things are cached.
FROZEN_EXCEPTIONS = {"data.cache_dir"}

# ----------------------------------------------------------------------------- keys and values


def schema() -> dict[str, Any]:
    """Every dotted key ("model.d_model") and its Python type (int, float, str, bool, list[str])."""
    keys: dict[str, Any] = {}
    for table, table_cls in typing.get_type_hints(Config).items():
        for name, typ in typing.get_type_hints(table_cls).items():
            keys[f"{table}.{name}"] = typ
    return keys


def _suggest(key: str, known: list[str]) -> str:
    # Compare both the full dotted key and its last part, so `--d_model` finds `model.d_model`.
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    if not close:
        leaf = key.rsplit(".", 1)[-1]
        by_leaf = {k.rsplit(".", 1)[-1]: k for k in known}
        leaf_match = difflib.get_close_matches(leaf, list(by_leaf), n=1, cutoff=0.6)
        close = [by_leaf[leaf_match[0]]] if leaf_match else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_key_error(key: str, where: str) -> UserError:
    known = sorted(schema())
    return UserError(f"unknown config key {key!r} in {where}{_suggest(key, known)}")


def _coerce(key: str, typ: Any, value: Any, where: str) -> Any:
    """Check a TOML value against the schema type (ints are accepted where floats are)."""

    def bad() -> UserError:
        want = getattr(typ, "__name__", str(typ))
        return UserError(f"config key {key!r} in {where} must be {want}, got {value!r}")

    if typ is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if typ is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad()
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise bad()
        return value
    if typing.get_origin(typ) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad()
        return list(value)
    raise TypeError(f"schema type {typ} of {key} is not supported")


def parse_cli_value(key: str, text: str) -> Any:
    """Turn the text after `--model.d_model` into the key's type."""
    typ = schema()[key]
    where = "the command line"
    try:
        if typ is bool:
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            return int(text.replace("_", ""))
        if typ is float:
            return float(text)
        if typ is str:
            return text
        if typing.get_origin(typ) is list:
            # A TOML array (`["<|endoftext|>", "<pad>"]`) or a comma-separated list.
            if text.lstrip().startswith("["):
                return _coerce(key, typ, tomllib.loads(f"v = {text}")["v"], where)
            return [part for part in text.split(",") if part]
    except (ValueError, tomllib.TOMLDecodeError):
        pass
    want = getattr(typ, "__name__", str(typ))
    raise UserError(f"--{key} wants {want}, got {text!r}")


# ----------------------------------------------------------------------------- loading


def shipped_configs() -> dict[str, Path]:
    """The configs that ship with the app, by name (`demo`, `tinystories-17m`, ...)."""
    folder = resources.files("train_app") / "configs"
    return {Path(p.name).stem: Path(str(p)) for p in folder.iterdir() if p.name.endswith(".toml")}


def find_config(name_or_path: str) -> Path:
    """`demo` finds the shipped configs/demo.toml; anything else is a path to a TOML file."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    if name_or_path in shipped:
        return shipped[name_or_path]
    if path.suffix == ".toml" or "/" in name_or_path:
        raise UserError(f"config file {name_or_path!r} does not exist")
    close = difflib.get_close_matches(name_or_path, list(shipped), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    names = ", ".join(sorted(shipped))
    raise UserError(f"no config named {name_or_path!r}{hint}; shipped configs: {names}")


def apply(config: Config, values: dict[str, Any], where: str) -> Config:
    """Set dotted keys on `config` (in place), checking names and types; returns it."""
    types = schema()
    for key, value in values.items():
        if key not in types:
            raise unknown_key_error(key, where)
        table, name = key.split(".", 1)
        setattr(getattr(config, table), name, _coerce(key, types[key], value, where))
    return config


def flatten(table: dict[str, Any], where: str) -> dict[str, Any]:
    """{"model": {"d_model": 8}} -> {"model.d_model": 8}; a value outside a table is an error."""
    flat: dict[str, Any] = {}
    for section, body in table.items():
        if not isinstance(body, dict):
            raise unknown_key_error(section, where)
        for name, value in body.items():
            if isinstance(value, dict):
                raise unknown_key_error(f"{section}.{name}", where)
            flat[f"{section}.{name}"] = value
    return flat


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return flatten(tomllib.load(f), str(path))
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"config file {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise UserError(f"cannot read config file {path}: {e.strerror}") from None


def load(name_or_path: str = "demo", overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file, then the already-typed overrides."""
    path = find_config(name_or_path)
    config = apply(Config(), load_toml(path), str(path))
    return apply(config, overrides or {}, "the command line")


def to_dict(config: Config) -> dict[str, dict[str, Any]]:
    return dataclasses.asdict(config)


def from_dict(table: dict[str, Any], where: str) -> Config:
    return apply(Config(), flatten(table, where), where)


def validate(config: Config) -> None:
    """Values that type-check but cannot work, caught before anything is written."""
    m, t, o = config.model, config.train, config.optim
    checks = [
        (
            m.d_model % m.num_heads == 0,
            f"model.d_model ({m.d_model}) must be a multiple of model.num_heads ({m.num_heads})",
        ),
        (
            (m.d_model // max(m.num_heads, 1)) % 2 == 0 or m.pos != "rope",
            "RoPE needs an even head size: model.d_model / model.num_heads must be even",
        ),
        (m.context_length >= 2, "model.context_length must be at least 2"),
        (m.norm in ("pre", "post", "none"), "model.norm must be 'pre', 'post' or 'none'"),
        (m.ffn in ("swiglu", "silu"), "model.ffn must be 'swiglu' or 'silu'"),
        (m.pos in ("rope", "nope"), "model.pos must be 'rope' or 'nope'"),
        (
            t.batch_size >= 1 and t.grad_accum_steps >= 1,
            "train.batch_size and train.grad_accum_steps must be at least 1",
        ),
        (
            t.batch_size % t.grad_accum_steps == 0,
            f"train.batch_size ({t.batch_size}) must be a multiple of train.grad_accum_steps "
            f"({t.grad_accum_steps})",
        ),
        (t.max_steps >= 1, "train.max_steps must be at least 1"),
        (
            min(t.eval_interval, t.eval_batches, t.log_interval, t.keep_checkpoints) >= 1,
            "train.eval_interval, eval_batches, log_interval and keep_checkpoints must be >= 1",
        ),
        (t.checkpoint_interval >= 0, "train.checkpoint_interval must be >= 0 (0: only at the end)"),
        (t.max_grad_norm >= 0, "train.max_grad_norm must be >= 0 (0: no clipping)"),
        (o.warmup_steps >= 0, "optim.warmup_steps must be >= 0"),
        (o.lr > 0 and 0 <= o.min_lr <= o.lr, "optim.lr must be > 0 and 0 <= optim.min_lr <= lr"),
        (0.0 < config.data.val_fraction < 1.0, "data.val_fraction must be between 0 and 1"),
        (
            config.tokenizer.vocab_size >= 256 + len(config.tokenizer.special_tokens),
            "tokenizer.vocab_size must be at least 256 + the number of special tokens",
        ),
        (
            config.system.compile in ("auto", "on", "off", "reduce-overhead"),
            "system.compile must be auto, on, off or reduce-overhead",
        ),
        (
            config.system.attention in ("auto", "flash", "sdpa", "naive"),
            "system.attention must be auto, flash, sdpa or naive",
        ),
        (
            config.system.precision in ("auto", "bf16", "fp16", "fp32"),
            "system.precision must be auto, bf16, fp16 or fp32",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def incompatibilities(saved: Config, wanted: Config) -> list[str]:
    """The frozen keys on which two configs disagree, as 'key: saved -> wanted' lines."""
    a, b = to_dict(saved), to_dict(wanted)
    diffs = []
    for table in FROZEN_TABLES:
        for name, value in a[table].items():
            key = f"{table}.{name}"
            if key not in FROZEN_EXCEPTIONS and b[table][name] != value:
                diffs.append(f"{key}: {value!r} in the run, {b[table][name]!r} now")
    return diffs


# ----------------------------------------------------------------------------- writing TOML


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # shortest text that reads back to the same float; "1e-08" is TOML
    if isinstance(value, str):
        # A JSON string is a TOML basic string for everything json.dumps emits: \" \\ \n \t \b
        # \f \r and \uXXXX escapes, other characters as they are.
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def to_toml(config: Config, header: str = "") -> str:
    """The config as TOML text that `tomllib` reads back to an equal config."""
    lines = [f"# {line}" for line in header.splitlines()]
    for table, body in to_dict(config).items():
        lines.append("")
        lines.append(f"[{table}]")
        for name, value in body.items():
            lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines).lstrip("\n") + "\n"
