"""`uv run apps/train [COMMAND] [OPTIONS] [--table.key VALUE ...]`: the command line.

With no command it runs the whole pipeline on the built-in corpus: tokenize, train (resuming if
the run directory already has a checkpoint), then print a sample. Every error a user can cause
ends in one line on stderr and a non-zero exit status; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from train_app import config as cfg
from train_app.errors import UserError
from train_app.rundir import RunDir

COMMANDS = {
    "tokenize": "train the BPE tokenizer and encode the train/validation token files",
    "train": "train the model on a tokenized run directory (resumes from its latest checkpoint)",
    "generate": "sample text from a trained run",
    "resume": "continue a run from its latest checkpoint, with the run's own config",
    "info": "parameters, FLOPs/token and memory of a config (and the state of a run directory)",
}

EPILOG = """\
config overrides: any key of the config as --TABLE.KEY VALUE, e.g.
  --model.d_model 256 --model.num_layers 6 --train.max_steps 2000 --optim.lr 1e-3
  (tables: data, tokenizer, model, train, optim, system, sample; `info` lists the values)

examples:
  uv run apps/train                                    # the whole pipeline on built-in text
  uv run apps/train --data book.txt --train.max_steps 500
  uv run apps/train generate --run runs/demo --prompt "The" --temperature 0.7
  uv run apps/train --config tinystories-17m --dataset tinystories   # on a GPU
  torchrun --nproc_per_node 4 apps/train train --run-dir runs/tinystories-17m
"""


def _common_options() -> argparse.ArgumentParser:
    # SUPPRESS: an option not given leaves no attribute, so options before and after the
    # command name do not overwrite each other.
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument(
        "--config",
        metavar="NAME|PATH",
        help="a shipped config (demo, tinystories-17m, owt-small, gpt2-small) or a TOML file "
        "(default: the run directory's own config.toml, else demo)",
    )
    common.add_argument(
        "--run",
        "--run-dir",  # the same; under torchrun, whose own --run-path makes `--run` ambiguous
        dest="run",
        metavar="DIR",
        help="run directory (default: runs/<config name>[-<data name>]); --run-dir under torchrun",
    )
    common.add_argument(
        "--data",
        metavar="PATH",
        help="a UTF-8 text file (documents split by <|endoftext|>) or a directory of .txt files",
    )
    common.add_argument(
        "--dataset", metavar="NAME", help="download a CS336 dataset: tinystories or owt"
    )
    common.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:1 ...")
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="uv run apps/train",
        description="Raw text -> BPE tokenizer -> Transformer LM -> generated text. With no "
        "command: the whole pipeline (tokenize, train or resume, sample).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[common],
        allow_abbrev=False,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(
            name, help=help_text, description=help_text, parents=[common], allow_abbrev=False
        )
        if name == "generate":
            p.add_argument("--prompt", help="text to continue (default: the config's)")
            p.add_argument("--max-new-tokens", type=int, metavar="N")
            p.add_argument("--temperature", type=float, metavar="T", help="0: greedy")
            p.add_argument("--top-p", type=float, metavar="P", help="nucleus sampling mass")
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--checkpoint", metavar="PATH", help="default: the latest")
    return parser


def split_overrides(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Take `--table.key VALUE` / `--table.key=VALUE` out of argv; check and type them."""
    rest: list[str] = []
    overrides: dict[str, Any] = {}
    known = cfg.schema()
    i = 0
    while i < len(argv):
        arg = argv[i]
        name = arg[2:].split("=", 1)[0]
        if arg.startswith("--") and "." in name:
            if "=" in arg:
                value = arg.split("=", 1)[1]
            elif i + 1 < len(argv):
                i += 1
                value = argv[i]
            else:
                raise UserError(f"--{name} needs a value")
            if name not in known:
                raise cfg.unknown_key_error(name, "the command line")
            overrides[name] = cfg.parse_cli_value(name, value)
        else:
            rest.append(arg)
        i += 1
    return rest, overrides


def _all_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [parser] + [p for a in subparsers for p in a.choices.values()]


def _unknown_option_error(extras: list[str], parser: argparse.ArgumentParser) -> UserError:
    word = extras[0]
    if not word.startswith("-"):
        return UserError(f"unexpected argument {word!r} (commands: {', '.join(COMMANDS)})")
    by_leaf = {f"--{k.rsplit('.', 1)[-1]}": f"--{k}" for k in cfg.schema()}
    if word in by_leaf:  # `--lr` -> `--optim.lr`
        close = [by_leaf[word]]
    else:
        options = [s for a in parser._actions for s in a.option_strings]
        options += [f"--{k}" for k in cfg.schema()]
        close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
        if not close:
            leaf = difflib.get_close_matches(word, list(by_leaf), n=1, cutoff=0.7)
            close = [by_leaf[leaf[0]]] if leaf else []
    hint = f" (did you mean {close[0]}?)" if close else ""
    return UserError(f"unknown option {word}{hint}; see --help")


# ----------------------------------------------------------------------------- config + run dir


def resolve(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[cfg.Config, RunDir]:
    """The config (file or run's own, plus overrides and shortcuts) and the run directory."""
    config_arg = getattr(args, "config", None)
    shortcuts = dict(overrides)
    source = getattr(args, "data", None) or getattr(args, "dataset", None)
    if getattr(args, "data", None) and getattr(args, "dataset", None):
        raise UserError("give --data or --dataset, not both")
    if getattr(args, "dataset", None) and args.dataset not in ("tinystories", "owt"):
        raise UserError(f"--dataset {args.dataset!r}: known datasets are tinystories and owt")
    if source:
        shortcuts["data.source"] = source
    if getattr(args, "device", None):
        shortcuts["system.device"] = args.device

    if getattr(args, "run", None):
        run = RunDir(args.run)
    else:
        name = Path(config_arg).stem if config_arg else "demo"
        if getattr(args, "data", None):
            name += "-" + Path(args.data.rstrip("/")).stem
        elif getattr(args, "dataset", None) and args.dataset not in name:
            name += "-" + args.dataset
        run = RunDir(Path("runs") / name)

    saved = run.load_config()
    if config_arg:
        config = cfg.load(config_arg, shortcuts)
    elif saved is not None:
        config = cfg.apply(saved, shortcuts, "the command line")
    else:
        config = cfg.load("demo", shortcuts)
    cfg.validate(config)
    run.check_compatible(config)
    return config, run


# ----------------------------------------------------------------------------- commands


def _fmt_duration(seconds: float) -> str:
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}" if m else f"{seconds:.1f} s"


def cmd_tokenize(config: cfg.Config, run: RunDir, out: TextIO) -> dict:
    from train_app.prepare import tokenize

    print(f"run        {run.root}/", file=out)
    return tokenize(config, run, out)


def cmd_train(config: cfg.Config, run: RunDir, out: TextIO, require_checkpoint: bool = False):
    from train_app.training import perplexity, train

    if require_checkpoint and run.latest_checkpoint() is None:
        raise UserError(f"run directory {run.root} has no checkpoint to resume from")
    result = train(config, run, out)
    s = result.summary
    if s and not result.interrupted and result.is_main:
        tps, mfu = s.get("session_tokens_per_s"), s.get("session_mfu")
        speed = f" · {tps / 1e3:,.1f}k tokens/s" if tps else ""
        speed += f" · MFU {100 * mfu:.1f}%" if mfu else ""
        print(
            f"done       step {result.step:,} · val loss {s['val_loss']:.4f} "
            f"(perplexity {perplexity(s['val_loss'])}) · train loss {s['train_loss']:.4f}"
            f"{speed} · {_fmt_duration(s['wall_s'])} of training in all",
            file=out,
        )
    return result


def _sample_and_save(
    config: cfg.Config,
    run: RunDir,
    model,
    tokenizer,
    step: int,
    *,
    prompt: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_new_tokens: int | None = None,
    seed: int = 0,
) -> str:
    """Generate (each setting not given comes from the [sample] table) and append to samples.txt."""
    from train_app.sampling import append_sample, generate_text

    s = config.sample
    prompt = s.prompt if prompt is None else prompt
    temperature = s.temperature if temperature is None else temperature
    top_p = s.top_p if top_p is None else top_p
    max_new_tokens = s.max_new_tokens if max_new_tokens is None else max_new_tokens
    text = generate_text(model, tokenizer, prompt, max_new_tokens, temperature, top_p, seed)
    append_sample(run, step, prompt, text, temperature, top_p)
    return text


def cmd_generate(config: cfg.Config, run: RunDir, args, out: TextIO) -> None:
    from train_app.device import resolve_device
    from train_app.sampling import load_model, load_tokenizer

    if run.load_config() is None:
        raise UserError(f"{run.root} is not a run directory (it has no config.toml)")
    tokenizer = load_tokenizer(run)
    device = resolve_device(config.system.device)
    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    model, step = load_model(config, run, device, checkpoint)
    text = _sample_and_save(
        config,
        run,
        model,
        tokenizer,
        step,
        prompt=args.prompt,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
    )
    print(text, file=out)
    print(f"\n(step {step:,} of {run.root}; appended to {run.samples_path})", file=sys.stderr)


def cmd_pipeline(config: cfg.Config, run: RunDir, out: TextIO, t_start: float) -> int:
    from train_app.sampling import load_tokenizer

    cmd_tokenize(config, run, out)
    t_train = time.perf_counter()
    result = cmd_train(config, run, out)
    if result.interrupted:
        return 130
    tokenizer = load_tokenizer(run)
    model = result.model.eval()
    text = _sample_and_save(config, run, model, tokenizer, result.step)
    print(
        f"sample     (temperature {config.sample.temperature}, top_p {config.sample.top_p})",
        file=out,
    )
    print("           " + text.replace("\n", "\n           "), file=out)
    total = time.perf_counter() - t_start
    print(
        f"time       {_fmt_duration(total)} in all, {_fmt_duration(time.perf_counter() - t_train)}"
        f" of it in training and sampling",
        file=out,
    )
    print_written(run, out)
    return 0


def print_written(run: RunDir, out: TextIO) -> None:
    checkpoints = run.checkpoints()
    latest = checkpoints[-1][1].name if checkpoints else "(none)"
    meta = run.load_meta()
    root = run.root
    print(
        f"written    {root}/\n"
        f"             config.toml     the full resolved config\n"
        f"             tokenizer/      vocab.json, merges.txt, special_tokens.json\n"
        f"             data/           train.bin ({meta['train_tokens']:,} tokens), val.bin "
        f"({meta['val_tokens']:,}), meta.json\n"
        f"             checkpoints/    {latest} (+{len(checkpoints) - 1} older)\n"
        f"             metrics.jsonl   loss.png   samples.txt\n"
        f'next       uv run apps/train generate --run {root} --prompt "..."\n'
        f"           uv run apps/train resume --run {root} --train.max_steps "
        f"{2 * _config_steps(run)}   (train longer)",
        file=out,
    )


def _config_steps(run: RunDir) -> int:
    saved = run.load_config()
    return saved.train.max_steps if saved else 0


def cmd_info(config: cfg.Config, run: RunDir, out: TextIO) -> None:
    from train_app import accounting

    vocab = config.tokenizer.vocab_size
    if run.meta_path.exists():
        vocab = run.load_meta()["vocab_size"]
    cost = accounting.model_cost(config, vocab)
    m, t = config.model, config.train
    tokens = t.batch_size * t.max_steps * m.context_length
    gib = 1024**3
    mem = cost.memory
    print(
        f"model      {m.num_layers} layers · d_model {m.d_model} · {m.num_heads} heads · d_ff "
        f"{m.d_ff} · context {m.context_length} · vocab {vocab:,}\n"
        f"params     {cost.params:,} ({cost.non_embedding_params:,} besides the embeddings)\n"
        f"FLOPs      {cost.flops_per_token_train / 1e6:,.1f} MFLOPs per token to train (6N + 12LTd)"
        f"; {tokens * cost.flops_per_token_train:.3g} for {tokens:,} tokens\n"
        f"memory     {mem['total'] / gib:.2f} GiB to train at micro-batch "
        f"{t.batch_size // t.grad_accum_steps} (estimate): weights {mem['parameters'] / gib:.2f},"
        f" grads {mem['gradients'] / gib:.2f}, AdamW {mem['optimizer_state'] / gib:.2f}, "
        f"activations {mem['activations'] / gib:.2f}",
        file=out,
    )
    if run.config_path.exists():
        latest = run.latest_checkpoint()
        records = run.read_metrics()
        val = [r for r in records if "val_loss" in r]
        state = f"step {latest[0]:,}" if latest else "no checkpoint"
        if val:
            state += f" · last val loss {val[-1]['val_loss']:.4f} at step {val[-1]['step']:,}"
        print(f"run        {run.root}/: {state}", file=out)
    print("\n" + cfg.to_toml(config, "resolved config"), file=out, end="")


# ----------------------------------------------------------------------------- entry point


def run_command(argv: list[str], out: TextIO, t_start: float) -> int:
    parser = build_parser()
    rest, overrides = split_overrides(argv)
    known = {o for p in _all_parsers(parser) for a in p._actions for o in a.option_strings}
    unknown = [a for a in rest if a.startswith("--") and a.split("=", 1)[0] not in known]
    if unknown:  # before argparse, which would take `--lr 3`'s value for a command name
        raise _unknown_option_error(unknown, parser)
    args, extras = parser.parse_known_args(rest)
    if extras:
        raise _unknown_option_error(extras, parser)
    command = args.command
    if command == "resume" and getattr(args, "config", None):
        raise UserError("resume uses the run's own config.toml; drop --config (overrides work)")
    config, run = resolve(args, overrides)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and command not in ("train", "resume"):
        raise UserError(
            "under torchrun only `train` and `resume` run (one process per GPU); tokenize first "
            "in a single process: uv run apps/train tokenize --run DIR ..."
        )
    if command in ("resume", "generate") and not run.config_path.exists():
        raise UserError(f"{run.root} is not a run directory (it has no config.toml)")
    if command is None:
        return cmd_pipeline(config, run, out, t_start)
    elif command == "tokenize":
        cmd_tokenize(config, run, out)
    elif command in ("train", "resume"):
        result = cmd_train(config, run, out, require_checkpoint=command == "resume")
        return 130 if result.interrupted else 0
    elif command == "generate":
        cmd_generate(config, run, args, out)
    elif command == "info":
        cmd_info(config, run, out)
    return 0


def _leave_process_group() -> None:
    """Under torchrun, end the process group once every rank is done: left to interpreter
    shutdown, its threads can outlive it and abort a rank after a run that succeeded."""
    distributed = sys.modules.get("torch.distributed")
    if distributed is not None and distributed.is_available() and distributed.is_initialized():
        distributed.barrier()
        distributed.destroy_process_group()


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    t_start = time.perf_counter()
    argv = sys.argv[1:] if argv is None else list(argv)
    out = out or sys.stdout
    debug = "--debug" in argv
    try:
        code = run_command(argv, out, t_start)
        _leave_process_group()
        return code
    except UserError as e:
        if debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `... | head`: the reader left; that is not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (no flush error at exit)
        return 0
    except KeyboardInterrupt:
        if debug:
            raise
        print(
            "\ninterrupted (no checkpoint was being trained; nothing half-written is kept)",
            file=sys.stderr,
        )
        return 130
    except Exception as e:  # a bug, not a user error: say so, briefly
        if debug:
            raise
        import torch

        if isinstance(e, torch.OutOfMemoryError):
            print(
                "error: out of GPU memory: lower --train.batch_size or raise "
                "--train.grad_accum_steps",
                file=sys.stderr,
            )
            return 3
        print(
            f"error: unexpected {type(e).__name__}: {e}\n"
            f"(this is a bug or an unhandled case; run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
