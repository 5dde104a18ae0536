"""Run-time settings shared by every notebook, script and test.

Quick mode (``COURSE_QUICK=1``, set by ``make test``) shrinks data sizes, epochs and
timing repetitions so CI runs every cell fast. The code paths stay the same; only
sizes change, so numbers printed in quick mode are not meaningful.
"""

from __future__ import annotations

import logging
import os
import random
import warnings

import numpy as np
import torch

from .device import cpu_model, default_device, device_name  # noqa: F401 - re-exported for chapters and scripts

_TRUE = {"1", "true", "yes", "on"}


def quick_mode() -> bool:
    """True when ``COURSE_QUICK`` is set to 1/true/yes/on (the CI quick mode)."""
    return os.environ.get("COURSE_QUICK", "").strip().lower() in _TRUE


def pick(full, quick):
    """Return ``quick`` in quick mode, else ``full`` (one place for every size knob)."""
    return quick if quick_mode() else full


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch so runs reproduce."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def quiet_libraries() -> None:
    """Keep library chatter (fvcore's unsupported-operator warnings, tracer warnings) out of notebooks."""
    for name in ("fvcore", "fvcore.nn.jit_analysis", "iopath"):
        logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch.jit")
    warnings.filterwarnings("ignore", module="fvcore")


def setup_notebook(chapter: str, seed: int = 0) -> None:
    """First cell of every chapter: seeds, quiet libraries, and one line saying where we run."""
    seed_everything(seed)
    quiet_libraries()
    try:
        import matplotlib

        matplotlib.rcParams.update({"figure.dpi": 100, "figure.figsize": (7, 3.5)})
    except ImportError:  # pragma: no cover - matplotlib is a core dependency
        pass
    dev = default_device()
    print(f"{chapter} | torch {torch.__version__} | device: {device_name(dev)}")
    if dev.type == "cpu":
        print("No GPU found: everything runs on the CPU (GPU-only cells say so and fall back).")
    if quick_mode():
        print("QUICK MODE (COURSE_QUICK=1): sizes, epochs and timing repeats are shrunk for CI; "
              "numbers below are not meaningful. Unset COURSE_QUICK for the real run.")
