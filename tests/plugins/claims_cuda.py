"""Test plugin: makes torch say CUDA is initialised (as an import that touched the GPU would), so that the zygote
refuses to fork and the pool must start its workers plainly (bench/execution/zygote.py)."""

import torch

torch.cuda.is_initialized = lambda: True
