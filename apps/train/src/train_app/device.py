"""Where and how the model runs: device, autocast precision, torch.compile, attention kernel.

"auto" everywhere means: on CUDA, bf16 autocast + torch.compile + the faster of the Triton
FlashAttention-2 kernel from kernels_triton and torch's SDPA, timed forward + backward at the
run's attention shape (falling back to SDPA, with a one-line notice, when Triton or the kernel
is unavailable or fails its smoke test); on CPU, fp32, no compile (its compile time would eat a
short run), and torch's SDPA (the fastest exact attention on CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from train_app.config import SystemConfig
from train_app.errors import UserError


@dataclass
class Placement:
    device: torch.device
    precision: str  # "bf16" | "fp16" | "fp32": the autocast width of the forward pass
    compile: bool
    attention: str | Callable  # what nn_core.TransformerLM takes as attention_fn
    attention_name: str  # for the console: "flash (Triton)", "sdpa (torch)", "naive (nn_core)"
    notices: list[str] = field(default_factory=list)
    compile_mode: str = "default"  # torch.compile's mode ("reduce-overhead": CUDA graphs)

    def describe(self) -> str:
        name = self.device.type
        if self.device.type == "cuda":
            name = f"{torch.cuda.get_device_name(self.device)} ({self.device})"
        compiled = ", torch.compile" if self.compile else ""
        if self.compile and self.compile_mode != "default":
            compiled += f" ({self.compile_mode})"
        return f"{name} · {self.precision}{compiled} · attention {self.attention_name}"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device (try cpu, cuda or cuda:1)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for, but this machine has no CUDA GPU; use cpu")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {name}: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def _flash_attention_or_reason(head_dim: int, device: torch.device) -> tuple[Callable | None, str]:
    """kernels_triton.flash_attention if it imports and matches SDPA on a small causal input."""
    try:
        import kernels_triton
    except Exception as e:  # ImportError, or Triton failing to initialise
        return None, f"kernels_triton does not import ({type(e).__name__}: {e})"
    fn = getattr(kernels_triton, "flash_attention", None)
    if fn is None:
        return None, "kernels_triton has no flash_attention"
    try:
        # Shaped as nn_core makes them: (B, T, nh*hs) viewed as (B, nh, T, hs), not contiguous.
        def qkv():
            x = torch.randn(3, 2, 80, 2 * head_dim, device=device, dtype=torch.bfloat16)
            return [t.view(2, 80, 2, head_dim).transpose(1, 2).requires_grad_() for t in x]

        inputs = qkv()
        ref_inputs = [t.detach().float().requires_grad_() for t in inputs]
        out = fn(*inputs, True)
        ref = torch.nn.functional.scaled_dot_product_attention(*ref_inputs, is_causal=True)
        grad = torch.randn_like(ref)
        out.backward(grad.to(out.dtype))
        ref.backward(grad)
        errors = [(out.float() - ref).abs().max().item()]
        errors += [(a.grad.float() - b.grad).abs().max().item() for a, b in zip(inputs, ref_inputs)]
        if not max(errors) < 0.1:  # bf16 inputs and outputs: a few bf16 ulps of values ~1
            return None, f"flash_attention disagrees with SDPA (max error {max(errors):.3g})"
    except Exception as e:
        return None, f"flash_attention failed its smoke test ({type(e).__name__}: {e})"
    return fn, ""


def _fwd_bwd_ms(
    attention: Callable, shape: tuple[int, int, int, int], device, graphed: bool = False
) -> float:
    """Median ms of one causal bf16 forward + backward of `attention` on (B, H, T, D) inputs.

    Launched one call after another, the figure includes the host's launch time, which is what a
    compiled step pays per attention call; `graphed`: captured once in a CUDA graph and
    replayed, so only device time counts, which is what a step under CUDA graphs pays
    (`--system.compile reduce-overhead`)."""
    q, k, v = (
        torch.randn(shape, device=device, dtype=torch.bfloat16, requires_grad=True)
        for _ in range(3)
    )
    grad = torch.randn(shape, device=device, dtype=torch.bfloat16)

    def step():
        attention(q, k, v, True).backward(grad)

    if graphed:
        # Autotuning and allocator warm-up synchronize, which a capture forbids: run them first,
        # on a side stream as a capture requires.
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            step()
        step = graph.replay
    times = []
    for _ in range(7):  # the first rounds include autotuning / warm-up: the median skips them
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(5):
            step()
        end.record()
        torch.cuda.synchronize(device)
        times.append(start.elapsed_time(end) / 5)
    return sorted(times)[len(times) // 2]


def _sdpa(q, k, v, is_causal):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=is_causal)


def place(
    system: SystemConfig,
    head_dim: int,
    device: torch.device | None = None,
    attention_shape: tuple[int, int, int, int] | None = None,
) -> Placement:
    """Resolve every "auto" in the [system] table for this machine.

    `attention_shape` is the run's (micro-batch, heads, context, head_dim): with it, "auto"
    times the Triton kernel against SDPA there and keeps the faster one."""
    device = device or resolve_device(system.device)
    cuda = device.type == "cuda"
    if system.threads > 0:
        torch.set_num_threads(system.threads)
    precision = system.precision if system.precision != "auto" else ("bf16" if cuda else "fp32")
    compile_ = system.compile in ("on", "reduce-overhead") or (system.compile == "auto" and cuda)
    compile_mode = "reduce-overhead" if system.compile == "reduce-overhead" else "default"
    if compile_mode == "reduce-overhead" and not cuda:
        raise UserError("--system.compile reduce-overhead replays CUDA graphs: it needs a GPU")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls outside autocast
        torch.backends.cudnn.allow_tf32 = True

    notices: list[str] = []

    def placed(attention: str | Callable, name: str) -> Placement:
        return Placement(device, precision, compile_, attention, name, notices, compile_mode)

    choice = system.attention
    if choice in ("auto", "flash") and cuda:
        fn, reason = _flash_attention_or_reason(head_dim, device)
        if fn is not None and choice == "auto" and attention_shape is not None:
            # The kernel wins at long sequences; at short ones SDPA's cuDNN kernels may be
            # faster (tinystories-17m, T=256 and head_dim 32, trains ~25% faster on SDPA).
            graphed = compile_mode == "reduce-overhead"
            ours, theirs = (
                _fwd_bwd_ms(fn, attention_shape, device, graphed),
                _fwd_bwd_ms(_sdpa, attention_shape, device, graphed),
            )
            timing = f"{ours:.3f} ms vs SDPA {theirs:.3f} ms fwd+bwd at (B, H, T, D) = " + str(
                attention_shape
            )
            if graphed:
                timing += ", replayed as CUDA graphs"
            if theirs < ours:
                notices.append(f"notice: attention auto -> torch SDPA (Triton kernel {timing})")
                return placed("sdpa", "sdpa (torch)")
            notices.append(f"notice: attention auto -> Triton FlashAttention ({timing})")
        if fn is not None:
            return placed(fn, "flash (Triton)")
        if choice == "flash":
            raise UserError(f"--system.attention flash: {reason}")
        notices.append(f"notice: Triton FlashAttention unavailable ({reason}); using torch SDPA")
    elif choice == "flash":
        raise UserError("--system.attention flash needs a CUDA device; use sdpa or naive on CPU")
    if choice == "naive":
        return placed("naive", "naive (nn_core)")
    return placed("sdpa", "sdpa (torch)")
