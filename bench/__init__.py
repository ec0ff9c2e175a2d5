"""Measuring 2-D local attention: sweeps, timing, results, figures and the regression gate."""

import logging

# torch.utils.benchmark imports torch.utils.cpp_extension, which logs "No CUDA runtime is found" at every start when
# a CUDA build of torch (what pip picks by default) runs on a machine without a GPU: noise that would make every
# one-line error two lines. Which device ran is recorded in each row instead.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
