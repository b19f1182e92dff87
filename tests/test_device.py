import pytest
import torch

from charchat.device import pick_device


def test_cpu():
    info = pick_device("cpu")
    assert info.device == torch.device("cpu")
    assert info.amp_dtype is None and not info.needs_scaler and info.label == "cpu"


def test_auto_picks_an_available_device():
    info = pick_device("auto")
    assert pick_device(None) == info
    if torch.cuda.is_available():
        assert info.device.type == "cuda" and info.amp_dtype in (torch.bfloat16, torch.float16)
        assert "autocast" in info.label
    elif not (torch.backends.mps.is_available()):
        assert info == pick_device("cpu")


@pytest.mark.parametrize("name", ["bogus", "tpu:0", "meta"])
def test_unknown_devices(name):
    with pytest.raises(ValueError):
        pick_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_asked_for_but_absent():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")
