"""Cross-entropy between logits and integer targets, computed through log-sum-exp."""

from __future__ import annotations

import torch

from nn_core.embedding import check_token_ids


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over all positions of -log softmax(logits)[target].

    logits: (..., vocab_size), any leading dims; targets: (...) integer ids.
    -log p_t = logsumexp(logits) - logits[t]; the log-sum-exp is taken after subtracting the
    row max, so logits of magnitude 1e4 give a finite loss. Computed in at least float32
    whatever the logits' dtype, since the loss is a reduction over the whole batch.
    """
    if logits.ndim < 1 or logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"cross_entropy: logits {tuple(logits.shape)} must be targets {tuple(targets.shape)} "
            "plus a trailing vocab dim"
        )
    check_token_ids(targets, logits.shape[-1], name="targets")
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    row_max = logits.amax(dim=-1, keepdim=True)  # (..., 1)
    log_sum_exp = row_max.squeeze(-1) + torch.log(torch.exp(logits - row_max).sum(dim=-1))
    target_logit = logits.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    return (log_sum_exp - target_logit).mean()
