"""Autoregressive sampling: temperature, nucleus (top-p), stop at end-of-sequence, KV cache."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from nn_core.activations import softmax


def top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Zero every token outside the nucleus and renormalise.

    The nucleus is the smallest set of most-likely tokens whose total probability reaches top_p
    (Holtzman et al., 2020); the most likely token is always kept. probs: (..., vocab).
    """
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = (
        sorted_probs.cumsum(dim=-1) - sorted_probs
    )  # probability of strictly likelier tokens
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(dim=-1, keepdim=True)


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token id per row of logits (..., vocab); temperature 0 means argmax."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = softmax(logits.float() / temperature, dim=-1)
    if top_p < 1.0:
        probs = top_p_filter(probs, top_p)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompt_ids: Sequence[int] | torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_p: float = 1.0,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
    use_kv_cache: bool = True,
) -> list[int]:
    """Continue ``prompt_ids`` by up to ``max_new_tokens`` tokens; return only the new ones.

    Stops after emitting ``eos_id`` (which is included in the result). ``generator`` makes the
    draws reproducible. With ``use_kv_cache`` (and a model that has ``new_kv_cache``, like
    ``TransformerLM``) each step feeds only the newest token; once the sequence outgrows the
    context window, every step re-reads the last ``context_length`` tokens, exactly as the
    uncached path does.
    """
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    if not temperature >= 0:
        raise ValueError(f"generate: temperature must be >= 0, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"generate: top_p must be in (0, 1], got {top_p!r}")
    device = next(model.parameters()).device
    ids = torch.as_tensor(prompt_ids, dtype=torch.long, device="cpu").reshape(-1).tolist()
    if not ids:
        raise ValueError(
            "generate: prompt_ids is empty; give at least one token (e.g. a BOS/EOS id)"
        )
    # Checked here, in Python, so the error is as clear on a GPU as on the CPU.
    vocab_size = model.config.vocab_size
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(
            f"generate: prompt_ids contains id {bad[0]}, outside the vocabulary [0, {vocab_size})"
        )
    context_length = model.config.context_length
    use_cache = use_kv_cache and hasattr(model, "new_kv_cache")
    was_training = model.training
    model.eval()
    cache = model.new_kv_cache(batch_size=1) if use_cache else None
    new_tokens: list[int] = []
    try:
        for _ in range(max_new_tokens):
            if len(ids) > context_length:
                cache = None  # past the window positions shift every step: nothing to reuse
            if cache is None:
                window = ids[-context_length:]
                logits = model(torch.tensor([window], device=device))
            else:
                unseen = ids[cache.length :]  # the prompt at first, then only the newest token
                logits = model(torch.tensor([unseen], device=device), kv_cache=cache)
            next_id = int(sample_next_token(logits[0, -1], temperature, top_p, generator))
            ids.append(next_id)
            new_tokens.append(next_id)
            if eos_id is not None and next_id == eos_id:
                break
    finally:
        model.train(was_training)
    return new_tokens
