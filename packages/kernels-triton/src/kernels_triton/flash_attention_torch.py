"""FlashAttention-2 in tiled pure PyTorch: the readable reference and the CPU path.

This is Algorithm 1 (forward) and Algorithm 2 (backward) of the CS336 assignment 2 handout,
written with Python loops over tiles so that every step of the Triton kernels has a twin here:

- forward: for each query tile, walk the key tiles keeping a running row max `m`, a running
  softmax denominator `l` and an unnormalised output `acc` (online softmax); save O and the
  log-sum-exp L = m + log(l) of every query row;
- backward: recompute each probability tile P = exp(S - L) from L instead of storing the
  (T_q, T_k) matrix, with D = rowsum(dO * O) standing in for rowsum(P * dP).

Causal attention skips the key tiles wholly above the diagonal and masks only the tiles that
cross it, as the kernels do. All arithmetic is float32 whatever the input dtype; outputs come
back in the input dtype, L in float32.
"""

from __future__ import annotations

import torch

from kernels_triton.attention_inputs import check_attention_inputs

# Tiles of 64 keep the Python loop short on the CPU; the handout asks for at least 16 x 16.
DEFAULT_TILE = 64


def _causal_tile_mask(q_start: int, q_end: int, k_start: int, k_end: int, device) -> torch.Tensor:
    """(q_end - q_start, k_end - k_start) bool mask, True where query i may attend to key j <= i."""
    rows = torch.arange(q_start, q_end, device=device)[:, None]
    cols = torch.arange(k_start, k_end, device=device)[None, :]
    return rows >= cols


def flash_attention_torch_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    is_causal: bool = False,
    tile_q: int = DEFAULT_TILE,
    tile_k: int = DEFAULT_TILE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tiled attention forward. Returns (O in q's dtype, L float32 of shape q.shape[:-1])."""
    check_attention_inputs(q, k, v, is_causal)
    if tile_q < 16 or tile_k < 16:
        raise ValueError(f"tiles must be at least 16 x 16, got {tile_q} x {tile_k}")
    n_queries, n_keys, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = head_dim**-0.5
    qf, kf, vf = q.float(), k.float(), v.float()
    out = torch.empty(q.shape, dtype=torch.float32, device=q.device)
    lse = torch.empty(q.shape[:-1], dtype=torch.float32, device=q.device)
    row_shape = q.shape[:-2]  # (B, H) or (B,)

    for q_start in range(0, n_queries, tile_q):
        q_end = min(q_start + tile_q, n_queries)
        q_tile = qf[..., q_start:q_end, :]  # (..., Bq, D)
        row_max = torch.full((*row_shape, q_end - q_start), -torch.inf, device=q.device)
        row_sum = torch.zeros_like(row_max)
        acc = torch.zeros_like(q_tile)
        # Under the causal mask no query in this tile sees a key at or past q_end.
        keys_end = min(q_end, n_keys) if is_causal else n_keys
        for k_start in range(0, keys_end, tile_k):
            k_end = min(k_start + tile_k, keys_end)
            scores = q_tile @ kf[..., k_start:k_end, :].transpose(-1, -2) * scale  # (..., Bq, Bk)
            if is_causal and k_end - 1 > q_start:  # the tile crosses the diagonal
                mask = _causal_tile_mask(q_start, q_end, k_start, k_end, q.device)
                scores = scores.masked_fill(~mask, -torch.inf)
            new_max = torch.maximum(row_max, scores.amax(dim=-1))
            # Every row keeps key 0 (causal) or a real key (not causal) in its first tile, so
            # new_max is finite from the first tile on and these exponents never see inf - inf.
            probs = torch.exp(scores - new_max[..., None])  # unnormalised P~
            rescale = torch.exp(row_max - new_max)  # exp(m_old - m_new), 0 on the first tile
            row_sum = rescale * row_sum + probs.sum(dim=-1)
            acc = rescale[..., None] * acc + probs @ vf[..., k_start:k_end, :]
            row_max = new_max
        out[..., q_start:q_end, :] = acc / row_sum[..., None]
        lse[..., q_start:q_end] = row_max + torch.log(row_sum)
    return out.to(q.dtype), lse


def flash_attention_torch_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    is_causal: bool = False,
    tile_q: int = DEFAULT_TILE,
    tile_k: int = DEFAULT_TILE,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tiled attention backward by recomputation from L. Returns (dQ, dK, dV) in the input dtype."""
    n_queries, n_keys, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = head_dim**-0.5
    qf, kf, vf, dof = q.float(), k.float(), v.float(), grad_out.float()
    # D_i = rowsum(dO_i * O_i) = rowsum(P_i * dP_i): the softmax Jacobian's correction term.
    delta = (dof * out.float()).sum(dim=-1)  # (..., T_q)
    dq = torch.zeros_like(qf)
    dk = torch.zeros_like(kf)
    dv = torch.zeros_like(vf)

    for k_start in range(0, n_keys, tile_k):
        k_end = min(k_start + tile_k, n_keys)
        k_tile, v_tile = kf[..., k_start:k_end, :], vf[..., k_start:k_end, :]  # (..., Bk, D)
        # Under the causal mask only queries at or after k_start see this key tile.
        first_query = (k_start // tile_q) * tile_q if is_causal else 0
        for q_start in range(first_query, n_queries, tile_q):
            q_end = min(q_start + tile_q, n_queries)
            q_tile, do_tile = qf[..., q_start:q_end, :], dof[..., q_start:q_end, :]
            scores = q_tile @ k_tile.transpose(-1, -2) * scale  # (..., Bq, Bk)
            probs = torch.exp(scores - lse[..., q_start:q_end, None])  # P, recomputed
            if is_causal and k_end - 1 > q_start:
                mask = _causal_tile_mask(q_start, q_end, k_start, k_end, q.device)
                probs = probs.masked_fill(~mask, 0.0)
            dv[..., k_start:k_end, :] += probs.transpose(-1, -2) @ do_tile
            dprobs = do_tile @ v_tile.transpose(-1, -2)  # dP = dO V^T
            dscores = probs * (dprobs - delta[..., q_start:q_end, None])  # dS = P * (dP - D)
            dq[..., q_start:q_end, :] += (dscores @ k_tile) * scale
            dk[..., k_start:k_end, :] += (dscores.transpose(-1, -2) @ q_tile) * scale
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


class FlashAttentionTorch(torch.autograd.Function):
    """FlashAttention-2 as a tiled PyTorch autograd.Function (CPU path and test reference).

    `FlashAttentionTorch.apply(q, k, v, is_causal)` with q, k, v of shape (B, H, T, D) or (B, T, D).
    Saves L (float32, q.shape[:-1]), q, k, v and O for the backward pass.
    """

    @staticmethod
    def forward(ctx, q, k, v, is_causal=False):
        out, lse = flash_attention_torch_forward(q, k, v, is_causal)
        ctx.save_for_backward(lse, q, k, v, out)
        ctx.is_causal = is_causal
        return out

    @staticmethod
    def backward(ctx, grad_out):
        lse, q, k, v, out = ctx.saved_tensors
        dq, dk, dv = flash_attention_torch_backward(q, k, v, out, lse, grad_out, ctx.is_causal)
        return dq, dk, dv, None
