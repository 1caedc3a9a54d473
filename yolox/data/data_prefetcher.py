"""Moves the next training batch to the device while the current one is being used."""

from collections.abc import Iterable, Iterator

import torch


class DataPrefetcher:
    """Iterates ``(images, targets)`` already on ``device``.

    On CUDA the copy of batch n+1 runs on a side stream, overlapping the work on batch n (the loader
    should pin memory). On any other device it simply moves each batch when asked.
    """

    def __init__(self, loader: Iterable, device: torch.device = torch.device("cpu")) -> None:
        self.device = torch.device(device)
        self._batches = iter(loader)
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._next = self._start_copy() if self._stream is not None else None

    def _start_copy(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Launch the asynchronous copy of the next batch on the side stream (None at the end)."""
        try:
            images, targets = next(self._batches)[:2]
        except StopIteration:
            return None
        with torch.cuda.stream(self._stream):
            return images.to(self.device, non_blocking=True), targets.to(self.device, non_blocking=True)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next ``(images, targets)`` on the device; raises StopIteration when the loader ends."""
        if self._stream is None:
            images, targets = next(self._batches)[:2]
            return images.to(self.device), targets.to(self.device)
        if self._next is None:
            raise StopIteration
        current = torch.cuda.current_stream(self.device)
        current.wait_stream(self._stream)
        images, targets = self._next
        # The tensors were made on the side stream; tell the allocator the main stream now uses them.
        images.record_stream(current)
        targets.record_stream(current)
        self._next = self._start_copy()
        return images, targets

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    __next__ = next
