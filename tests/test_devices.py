"""The one reader of device settings: auto, cpu, and clear errors naming the setting."""

import pytest
import torch

from latentseg.util.devices import resolve_device


def test_auto_is_the_gpu_when_there_is_one_else_the_cpu() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_an_unknown_name_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"--device 'gpu0': not a torch device"):
        resolve_device("gpu0", "--device")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_an_error_naming_the_setting() -> None:
    for name in ("cuda", "cuda:1"):
        with pytest.raises(ValueError, match=rf"runtime.device '{name}': no CUDA device is visible"):
            resolve_device(name)
