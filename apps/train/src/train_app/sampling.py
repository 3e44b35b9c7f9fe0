"""`generate`: text from a trained run (its tokenizer + a checkpoint), appended to samples.txt."""

from __future__ import annotations

import datetime
from pathlib import Path

import torch

from train_app.config import Config
from train_app.errors import UserError
from train_app.rundir import RunDir


def load_tokenizer(run: RunDir):
    import bpe

    if not (run.tokenizer_dir / "vocab.json").exists():
        raise UserError(
            f"run directory {run.root} has no tokenizer: is it a run directory? (tokenize first: "
            f"uv run apps/train tokenize --run {run.root})"
        )
    return bpe.Tokenizer.load(run.tokenizer_dir)


def load_model(
    config: Config, run: RunDir, device: torch.device, checkpoint: Path | None = None
) -> tuple[torch.nn.Module, int]:
    """The run's model with the weights of `checkpoint` (default: the latest); (model, step)."""
    import trainer as tr
    from train_app.training import build_model

    if checkpoint is None:
        latest = run.latest_checkpoint()
        if latest is None:
            raise UserError(
                f"run directory {run.root} has no checkpoint yet: train it first "
                f"(uv run apps/train train --run {run.root})"
            )
        checkpoint = latest[1]
    meta = run.load_meta()
    model = build_model(config, meta["vocab_size"], "sdpa")
    try:
        step = tr.load_checkpoint(checkpoint, model)
    except (tr.CheckpointError, FileNotFoundError) as e:
        raise UserError(f"cannot load {checkpoint}: {e}") from None
    return model.to(device).eval(), step


def generate_text(
    model: torch.nn.Module,
    tokenizer,
    prompt: str,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int = 0,
) -> str:
    """The prompt and its continuation, stopping at the first end-of-text token."""
    import nn_core

    if not 0 < top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {top_p}")
    if temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {temperature}")
    if max_new_tokens < 0:
        raise UserError(f"--max-new-tokens must be >= 0, got {max_new_tokens}")
    eos_id = tokenizer.special_ids.get("<|endoftext|>")
    prompt_ids = tokenizer.encode(prompt) if prompt else []
    if not prompt_ids:  # an empty prompt starts a new document
        if eos_id is None:
            raise UserError(
                "--prompt is empty and the tokenizer has no <|endoftext|> to start from"
            )
        prompt_ids = [eos_id]
    context = model.config.context_length
    prompt_ids = prompt_ids[-context:]  # the model sees at most one context window
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    new_ids = nn_core.generate(
        model,
        prompt_ids,
        max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        eos_id=eos_id,
        generator=generator,
    )
    if eos_id is not None and new_ids and new_ids[-1] == eos_id:
        new_ids = new_ids[:-1]
    return prompt + tokenizer.decode(new_ids)


def append_sample(
    run: RunDir, step: int, prompt: str, text: str, temperature: float, top_p: float
) -> None:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = f"=== step {step} · {stamp} · temperature {temperature} · top_p {top_p} ==="
    with open(run.samples_path, "a", encoding="utf-8") as f:
        f.write(f"{header}\nprompt: {prompt!r}\n{text}\n\n")
