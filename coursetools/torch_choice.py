"""Which PyTorch build ``./course setup`` installs: the choice as a small function, the machine probes beside it.

PyPI's default PyTorch wheel for Linux is the CUDA build (several GB of NVIDIA libraries). A laptop without an
NVIDIA GPU needs only the CPU wheel, which PyTorch publishes on its own index. So:

1. ``FLOWS_TORCH`` set: exactly that requirement (with any pip options in it), nothing else is tried.
2. Linux with an NVIDIA GPU: the pinned requirement from the package index (PyPI's Linux wheel is the CUDA build).
3. Linux without one: the CPU wheel from PyTorch's CPU index, if that index answers; then, as a fallback (a machine
   that reaches only a package mirror), the plain pinned requirement.
4. macOS and Windows: the plain pinned requirement (PyPI's wheels there carry no CUDA libraries).

``choose_torch`` decides from plain facts and touches nothing, so the test suite checks the choice without a
download. Run as a script (by ``./course``, with the system Python, before ``.venv`` exists) it probes the machine
and prints one candidate per line, each a list of pip arguments separated by spaces, to be tried in order.
Standard library only: it must run before anything is installed.
"""
from __future__ import annotations

import os
import platform
import shlex
import shutil
import subprocess
import sys
import urllib.request

TORCH_VERSION = "2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def choose_torch(*, flows_torch: str | None, system: str, has_nvidia_gpu: bool, cpu_index_reachable: bool,
                 version: str = TORCH_VERSION) -> list[list[str]]:
    """The pip arguments to install PyTorch with, as candidates to try in order (the first that works wins)."""
    if flows_torch and flows_torch.strip():
        return [shlex.split(flows_torch)]
    plain = [f"torch=={version}"]
    if system != "Linux" or has_nvidia_gpu:
        return [plain]
    cpu = [f"torch=={version}", "--index-url", CPU_INDEX]
    return [cpu, plain] if cpu_index_reachable else [plain]


def has_nvidia_gpu() -> bool:
    """True if the NVIDIA driver is loaded and ``nvidia-smi`` (when present) lists a GPU."""
    if not os.path.exists("/proc/driver/nvidia/version"):
        return False
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return True  # the driver is there; trust it
    try:
        r = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return True
    return r.returncode == 0 and "GPU" in r.stdout


def index_reachable(url: str = CPU_INDEX, timeout: float = 5.0) -> bool:
    """True if ``url`` answers within ``timeout`` seconds (a mirror-only machine fails fast here, not in pip)."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url + "/torch/", method="HEAD"), timeout=timeout):
            return True
    except Exception:  # no route, no DNS, a proxy's refusal, a timeout: all mean "use the fallback"
        return False


def main() -> int:
    flows_torch = os.environ.get("FLOWS_TORCH")
    system = platform.system()
    gpu = system == "Linux" and not flows_torch and has_nvidia_gpu()
    reachable = system == "Linux" and not flows_torch and not gpu and index_reachable()
    for candidate in choose_torch(flows_torch=flows_torch, system=system, has_nvidia_gpu=gpu,
                                  cpu_index_reachable=reachable):
        print(" ".join(shlex.quote(a) for a in candidate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
