import os

import matplotlib
import torch

matplotlib.use("Agg")  # headless: widgets and plots draw into memory
os.environ.setdefault("FLOWS_FAST", "1")
# One thread: on a shared 2-core machine two OpenMP threads can run tens of times slower than one (PITFALLS.md).
torch.set_num_threads(1)
