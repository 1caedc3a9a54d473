"""Running averages for the training log, and memory figures."""

import resource
import sys
from collections import defaultdict, deque

import torch


class WindowMeter:
    """Keeps the last ``window_size`` values of one quantity plus its total over the run."""

    def __init__(self, window_size: int = 50) -> None:
        self.window: deque[float] = deque(maxlen=window_size)
        self.total = 0.0
        self.count = 0

    def update(self, value: float) -> None:
        """Add one value."""
        self.window.append(value)
        self.total += value
        self.count += 1

    @property
    def latest(self) -> float:
        """The last value added (NaN when empty)."""
        return self.window[-1] if self.window else float("nan")

    @property
    def avg(self) -> float:
        """Mean over the window (NaN when empty)."""
        return sum(self.window) / len(self.window) if self.window else float("nan")

    @property
    def global_avg(self) -> float:
        """Mean over every value ever added (NaN when empty)."""
        return self.total / self.count if self.count else float("nan")

    def clear(self) -> None:
        """Forget the window and the total."""
        self.window.clear()
        self.total = 0.0
        self.count = 0


class MeterBuffer(defaultdict):
    """A dict of :class:`WindowMeter` created on first use, updated from keyword values or tensors."""

    def __init__(self, window_size: int = 20) -> None:
        super().__init__(lambda: WindowMeter(window_size))

    def update(self, values: dict | None = None, **kwargs: float) -> None:  # type: ignore[override]
        """Add a value to each named meter; scalar tensors are read with one device sync for all of them."""
        items = {**(values or {}), **kwargs}
        tensor_names = [name for name, value in items.items() if isinstance(value, torch.Tensor)]
        if tensor_names:
            device = items[tensor_names[0]].device
            stacked = torch.stack([items[name].detach().float().reshape(()).to(device) for name in tensor_names])
            items.update(zip(tensor_names, stacked.tolist()))
        for name, value in items.items():
            self[name].update(float(value))

    def clear_meters(self) -> None:
        """Empty every meter (called after each printed line)."""
        for meter in self.values():
            meter.clear()


def peak_host_memory_mb() -> float:
    """Peak resident memory of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def peak_device_memory_mb(device: torch.device) -> float:
    """Peak memory allocated by torch on a CUDA ``device`` in MiB (0 for other devices)."""
    if device.type != "cuda":
        return 0.0
    return torch.cuda.max_memory_allocated(device) / 1024**2
