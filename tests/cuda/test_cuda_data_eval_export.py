"""On CUDA: the prefetcher's batches, half-precision evaluation against float32, and ONNX export of a CUDA model."""

import json
from pathlib import Path

import pytest
import torch

from yolox.cli.eval import main as eval_main
from yolox.cli.train import main as train_main
from yolox.data import DataPrefetcher

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")]


def test_prefetcher_delivers_the_plain_loaders_batches() -> None:
    generator = torch.Generator().manual_seed(0)
    images, targets = torch.rand(48, 3, 64, 64, generator=generator), torch.rand(48, 20, 5, generator=generator)
    dataset = torch.utils.data.TensorDataset(images, targets)

    def loader() -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(dataset, batch_size=8, shuffle=False, pin_memory=True, num_workers=2)

    device = torch.device("cuda")
    expected = [(batch_images.to(device), batch_targets.to(device)) for batch_images, batch_targets in loader()]
    got = []
    for batch_images, batch_targets in DataPrefetcher(loader(), device):
        # Work on the main stream while the next copy runs on the side stream: the batch must stay intact.
        torch.matmul(torch.rand(2048, 2048, device=device), torch.rand(2048, 2048, device=device))
        got.append((batch_images.clone(), batch_targets.clone()))
    assert len(got) == len(expected) == 6
    for (want_images, want_targets), (got_images, got_targets) in zip(expected, got):
        assert torch.equal(want_images, got_images) and torch.equal(want_targets, got_targets)


@pytest.fixture(scope="module")
def trained_run(write_cuda_exp) -> tuple[Path, Path]:
    """Three epochs (150 iterations) of fp16 training through the train command; returns the exp and checkpoint."""
    exp_file = write_cuda_exp(3, "eval")
    assert train_main(["-f", str(exp_file), "-b", "8", "--device", "cuda", "--amp", "fp16"]) == 0
    return exp_file, exp_file.parent / "runs" / "cuda_check" / "latest_ckpt.pth"


def evaluate(exp_file: Path, ckpt: Path, *flags: str) -> dict:
    assert eval_main(["-f", str(exp_file), "-c", str(ckpt), "-b", "8", "--device", "cuda", *flags]) == 0
    return json.loads((ckpt.parent / "eval_results.json").read_text())


def test_fp16_evaluation_matches_fp32(trained_run) -> None:
    exp_file, ckpt = trained_run
    full = evaluate(exp_file, ckpt)
    half = evaluate(exp_file, ckpt, "--fp16")
    assert full["ap50"] > 0.001, f"the short run detects nothing (AP50 {full['ap50']}): the comparison would be empty"
    assert abs(half["ap50_95"] - full["ap50_95"]) <= 0.002, (half, full)
    assert abs(half["ap50"] - full["ap50"]) <= 0.002, (half, full)


def test_onnx_export_of_a_cuda_model(trained_run, tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from yolox.exp import get_exp
    from yolox.utils.export import export_onnx, prepare_for_export

    exp_file, ckpt = trained_run
    exp = get_exp(str(exp_file))
    model = exp.get_model().cuda().eval()
    model.load_state_dict(torch.load(ckpt, map_location="cuda", weights_only=True)["model"])
    image = torch.rand(1, 3, 256, 256, device="cuda") * 255
    with torch.no_grad():
        expected = model(image).float().cpu()
    # The exporter moves the model to the CPU first: a model trained and held on the GPU exports as it is.
    path = export_onnx(prepare_for_export(model, decode_in_inference=True), tmp_path / "cuda.onnx", (256, 256), {})
    onnx.checker.check_model(onnx.load(str(path)))
    ort = pytest.importorskip("onnxruntime")
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": image.cpu().numpy()})[0]
    assert got.shape == tuple(expected.shape)
    assert torch.allclose(torch.from_numpy(got)[..., 4:], expected[..., 4:], atol=1e-3)
