"""optim: optimizers, learning-rate schedules and gradient clipping, in plain PyTorch.

  adamw         AdamW
  sgd           SGD (+ momentum)
  adagrad       AdaGrad
  schedule      cosine_lr
  clip          clip_grad_norm_
  param_groups  weight_decay_param_groups
See packages/optim/README.md.
"""

from optim.adagrad import AdaGrad
from optim.adamw import AdamW
from optim.clip import clip_grad_norm_
from optim.param_groups import weight_decay_param_groups
from optim.schedule import cosine_lr
from optim.sgd import SGD

__all__ = ["SGD", "AdaGrad", "AdamW", "clip_grad_norm_", "cosine_lr", "weight_decay_param_groups"]
