"""course.device: every device request becomes a cpu device or a CUDA device with an index."""

from __future__ import annotations

import pytest
import torch
import torch.cuda._utils

from course.device import default_device, device_name, local_rank, resolve_device, select_device


@pytest.fixture
def two_gpus(monkeypatch):
    """torch.cuda as it reads on a machine with two GPUs (the current one settable); the driver is never called."""
    current = [0]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: current[0])
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    return current


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_without_a_gpu_cuda_falls_back_to_the_cpu_with_a_note(no_gpu):
    for asked in ("cuda", "cuda:1", torch.device("cuda", 0)):
        dev, note = resolve_device(asked, name="dev")
        assert dev == torch.device("cpu")
        assert note.startswith(f"dev={str(asked)!r} asked for") and "no CUDA GPU is visible" in note
    assert resolve_device("auto") == (torch.device("cpu"), "")
    assert resolve_device(None) == (torch.device("cpu"), "")
    assert resolve_device(torch.device("cpu")) == (torch.device("cpu"), "")
    assert default_device() == torch.device("cpu")
    assert "thread" in device_name("cpu")


def test_select_device_prints_the_fallback(no_gpu, capsys):
    assert select_device("cuda") == torch.device("cpu")
    assert "no CUDA GPU is visible" in capsys.readouterr().out
    select_device("cpu")
    assert capsys.readouterr().out == ""


def test_cuda_always_carries_an_index(two_gpus):
    assert resolve_device("auto") == (torch.device("cuda", 0), "")
    assert resolve_device("CUDA:1")[0] == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 1))[0] == torch.device("cuda", 1)
    two_gpus[0] = 1
    assert resolve_device("cuda")[0] == torch.device("cuda", 1)  # plain "cuda" = the current GPU
    assert resolve_device(torch.device("cuda"))[0] == torch.device("cuda", 1)
    assert resolve_device("cpu")[0] == torch.device("cpu")
    for asked in ("auto", "cuda", "cuda:0", "cuda:1", torch.device("cuda")):
        dev = resolve_device(asked)[0]
        assert torch.cuda._utils._get_device_index(dev) == dev.index  # what torch.cuda.set_device accepts


def test_under_torchrun_each_process_takes_its_local_rank(two_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert local_rank() == 1
    assert resolve_device("auto") == (torch.device("cuda", 1), "")
    assert resolve_device("cuda") == (torch.device("cuda", 1), "")
    dev, note = resolve_device("cuda:0")
    assert dev == torch.device("cuda", 1) and "LOCAL_RANK 1" in note
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(ValueError, match=r"LOCAL_RANK 3 needs cuda:3, but only 2 CUDA device\(s\) are visible"):
        resolve_device("auto")


def test_a_gpu_that_is_not_there_is_an_error(two_gpus):
    with pytest.raises(ValueError, match=r"device='cuda:2' needs cuda:2, but only 2 CUDA device\(s\)"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("bad", ["tpu", "gpu", "cuda:x", "cuda:-1", "mps", 0, 1.5, torch.device("meta")])
def test_anything_else_is_a_clear_error(bad):
    with pytest.raises(ValueError) as info:
        resolve_device(bad, name="device")
    message = str(info.value)
    assert message.startswith("device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device")
    assert message.endswith(f"got {bad!r}")
