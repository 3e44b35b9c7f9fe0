"""train_app: the one command that composes bpe, nn_core, optim, kernels_triton and trainer."""
