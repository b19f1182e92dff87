"""Choosing where to run: CUDA, then Apple's MPS, then the CPU, and the matching precision."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceInfo:
    device: torch.device
    amp_dtype: torch.dtype | None  # autocast dtype, or None for plain float32
    needs_scaler: bool  # fp16 gradients need loss scaling; bf16 and fp32 do not

    @property
    def label(self) -> str:
        if self.amp_dtype is None:
            return self.device.type
        name = {torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        return f"{self.device.type} (autocast {name})"


def pick_device(requested: str | None = "auto") -> DeviceInfo:
    """'auto' picks cuda, then mps, then cpu; any other value must be available or it is an error."""
    req = (requested or "auto").lower()
    if req == "auto":
        if torch.cuda.is_available():
            req = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            req = "mps"
        else:
            req = "cpu"
    try:
        dev = torch.device(req)
    except RuntimeError:
        raise ValueError(f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {requested!r} asked for, but no CUDA GPU is available")
        bf16 = torch.cuda.is_bf16_supported()
        return DeviceInfo(dev, torch.bfloat16 if bf16 else torch.float16, needs_scaler=not bf16)
    if dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ValueError(f"device {requested!r} asked for, but MPS is not available")
        return DeviceInfo(dev, None, False)
    if dev.type != "cpu":
        raise ValueError(f"unsupported device {requested!r}: use auto, cpu, cuda, cuda:N or mps")
    return DeviceInfo(dev, None, False)


def compiled_or_eager(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
                      dev: DeviceInfo) -> tuple[torch.nn.Module, str | None]:
    """torch.compile(model), tried on one batch (x, y), and a note when it cannot be used.

    Compiling happens at the first call, and fails there on machines without a C++ compiler.
    It is an optimisation, so a failure means a note and the eager model, never a crashed run.
    The probe runs on a forked RNG (the run's dropout stream must not move) and leaves no
    gradients; a full batch, so that the run's first step has its shapes and does not compile
    again."""
    try:
        compiled = torch.compile(model)
        cuda = [dev.device.index or 0] if dev.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            amp = (torch.autocast(device_type=dev.device.type, dtype=dev.amp_dtype)
                   if dev.amp_dtype is not None else contextlib.nullcontext())
            with amp:
                _, loss = compiled(x, y)
            loss.backward()
        return compiled, None
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0][:160]
        return model, (f"torch.compile failed ({e.__class__.__name__}: {first}); "
                       "training without it")
    finally:
        model.zero_grad(set_to_none=True)
