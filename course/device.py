"""Where the course computes: one place turns a device request into a ``torch.device``.

Every script, chapter and tool (``course.measure``, ``course.guidelines``, ``course.yolo``) asks
``resolve_device``. The answer always carries an index on CUDA (``cuda:0``, not ``cuda``), since
``torch.cuda.set_device`` and NCCL need one. Under ``torchrun`` (``LOCAL_RANK`` set) each process
takes the GPU of its local rank, as YOLOv5's DDP does. CUDA asked for on a machine without a GPU
gives the CPU and a note saying so, so a chapter written for a GPU still runs everywhere.
"""

from __future__ import annotations

import os
import platform

import torch

__all__ = ["ALLOWED", "resolve_device", "select_device", "local_rank", "default_device", "device_name", "cpu_model"]

ALLOWED = "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device of type cpu or cuda"


def local_rank() -> int:
    """This process's ``LOCAL_RANK`` under ``torchrun``; -1 when not launched by it."""
    value = os.environ.get("LOCAL_RANK", "")
    return int(value) if value.strip().isdigit() else -1


def _parse(device, name: str) -> torch.device | None:
    """``None`` for "auto"; otherwise the requested cpu/cuda device (index kept if given)."""
    if device is None or (isinstance(device, str) and device.strip().lower() == "auto"):
        return None
    if isinstance(device, str):
        text = device.strip().lower()
        if text == "cpu" or text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
            return torch.device(text)
    elif isinstance(device, torch.device) and device.type in ("cpu", "cuda"):
        return device
    raise ValueError(f"{name} must be {ALLOWED}, got {device!r}")


def resolve_device(device="auto", name: str = "device") -> tuple[torch.device, str]:
    """``(torch.device, note)``: CUDA with an index, or the CPU; ``note`` says why if CUDA was refused.

    ``"auto"`` (or ``None``) means CUDA when a GPU is visible, else the CPU (no note). ``"cuda"``
    means the current CUDA device, or ``cuda:LOCAL_RANK`` under ``torchrun``; ``"cuda:N"`` that GPU
    (under ``torchrun`` the local rank's GPU wins, with a note). ``name`` is the argument named in errors.
    """
    asked = _parse(device, name)
    if asked is not None and asked.type == "cpu":
        return torch.device("cpu"), ""
    if not torch.cuda.is_available():
        note = "" if asked is None else f"{name}={str(device)!r} asked for but no CUDA GPU is visible: using the CPU"
        return torch.device("cpu"), note
    count, rank, note = torch.cuda.device_count(), local_rank(), ""
    if rank >= 0:
        index = rank
        if asked is not None and asked.index is not None and asked.index != rank:
            note = f"{name}={str(device)!r} ignored under torchrun: LOCAL_RANK {rank} uses cuda:{rank}"
    elif asked is not None and asked.index is not None:
        index = asked.index
    else:
        index = torch.cuda.current_device()
    if index >= count:
        where = f"LOCAL_RANK {rank}" if rank >= 0 else f"{name}={str(device)!r}"
        raise ValueError(f"{where} needs cuda:{index}, but only {count} CUDA device(s) are visible "
                         f"(cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", index), note


def select_device(device="auto", name: str = "device") -> torch.device:
    """``resolve_device``, printing its note (for scripts and training, where a fallback must be seen)."""
    dev, note = resolve_device(device, name)
    if note:
        print(f"NOTE: {note}")
    return dev


def default_device() -> torch.device:
    """CUDA (with its index) when a GPU is visible, else CPU."""
    return resolve_device("auto")[0]


def device_name(device=None) -> str:
    """Human-readable name of a device: the GPU model, or the CPU and its thread count."""
    dev = resolve_device(device)[0]
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    n = torch.get_num_threads()
    return f"CPU ({cpu_model()}, {n} thread{'s' if n != 1 else ''})"


def cpu_model() -> str:
    """The processor's marketing name where the OS tells it (Linux, macOS), else its architecture."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
