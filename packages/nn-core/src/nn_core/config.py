"""ModelConfig: every size and architectural switch of a TransformerLM, checked on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from nn_core.feedforward import default_d_ff

NORM_CHOICES = ("pre", "post", "none")
FFN_CHOICES = ("swiglu", "silu")
POS_CHOICES = ("rope", "nope")


@dataclass
class ModelConfig:
    """Defaults are the CS336 TinyStories model (about 17M parameters besides the embeddings)."""

    vocab_size: int = 10_000  # ids [0, vocab_size); the BPE vocab including special tokens
    context_length: int = 256  # longest sequence the model sees (RoPE table size)
    d_model: int = 512
    num_layers: int = 4
    num_heads: int = 16  # head_dim = d_model / num_heads = 32
    d_ff: int | None = None  # SwiGLU width; None -> 8/3 d_model rounded to a multiple of 64 (1344)
    rope_theta: float = 10_000.0
    # Ablation switches (CS336 §7.3).
    norm: str = "pre"  # "pre": x + f(norm(x)); "post": norm(x + f(x)); "none": no RMSNorm at all
    ffn: str = "swiglu"  # "silu": W2 SiLU(W1 x) with d_ff = 4 d_model (about SwiGLU's parameters)
    pos: str = "rope"  # "nope": no position information besides the causal mask
    tie_embeddings: bool = False  # lm_head reuses token_embeddings.weight (init std d_model^-0.5)
    norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "d_model", "num_layers", "num_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.d_ff is not None and (not isinstance(self.d_ff, int) or self.d_ff <= 0):
            raise ValueError(f"ModelConfig.d_ff must be a positive int or None, got {self.d_ff!r}")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"ModelConfig: d_model={self.d_model} is not divisible by "
                f"num_heads={self.num_heads}"
            )
        if self.pos == "rope" and self.head_dim % 2:
            raise ValueError(f"ModelConfig: RoPE needs an even head dim, got {self.head_dim}")
        for name, choices in (("norm", NORM_CHOICES), ("ffn", FFN_CHOICES), ("pos", POS_CHOICES)):
            if getattr(self, name) not in choices:
                raise ValueError(
                    f"ModelConfig.{name}={getattr(self, name)!r}; choose one of {choices}"
                )
        if not self.rope_theta > 0:
            raise ValueError(f"ModelConfig.rope_theta must be > 0, got {self.rope_theta!r}")
        if not self.norm_eps > 0:
            raise ValueError(f"ModelConfig.norm_eps must be > 0, got {self.norm_eps!r}")
        if not isinstance(self.tie_embeddings, bool):
            raise TypeError(
                f"ModelConfig.tie_embeddings must be a bool, got {self.tie_embeddings!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.num_heads

    @property
    def ffn_dim(self) -> int:
        """Hidden width of the feed-forward network actually built."""
        if self.ffn == "silu":
            return 4 * self.d_model
        return default_d_ff(self.d_model) if self.d_ff is None else self.d_ff

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ModelConfig:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"ModelConfig.from_dict: unknown keys {sorted(unknown)}")
        return cls(**values)
