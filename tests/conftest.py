import os

import matplotlib

matplotlib.use("Agg")  # headless: widgets and plots draw into memory
os.environ.setdefault("FLOWS_FAST", "1")
