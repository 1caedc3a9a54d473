"""DataPrefetcher: a pass-through on CPU (and an overlapped copy on CUDA when present)."""

import pytest
import torch

from yolox.data import DataPrefetcher


def batches():
    return [(torch.full((2, 3, 4, 4), float(step)), torch.full((2, 5, 5), float(step)), None, None)
            for step in range(3)]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA is not available"))])
def test_prefetcher_yields_every_batch_on_the_device(device):
    prefetcher = DataPrefetcher(batches(), torch.device(device))
    for step in range(3):
        images, targets = prefetcher.next()
        assert images.device.type == device and targets.device.type == device
        assert images[0, 0, 0, 0].item() == step and targets.shape == (2, 5, 5)
    with pytest.raises(StopIteration):
        prefetcher.next()
    assert len(list(DataPrefetcher(batches(), torch.device(device)))) == 3
