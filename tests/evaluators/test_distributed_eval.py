"""A 2-process gloo evaluation scores once on rank 0 and returns the single-process figures on every rank."""

import contextlib
import io

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from eval_fixtures import LetterboxedGroundTruth, OracleModel, coco_truth, evaluate_in_process_group, make_coco_set

from yolox.evaluators import COCOEvaluator


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path) -> None:
    """Each rank evaluates half of an odd-sized set (the sampler pads it); AP equals the single-process AP."""
    json_file = make_coco_set(tmp_path / "shapes", num_val=7)
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = LetterboxedGroundTruth(json_file, (128, 160))
    loader = torch.utils.data.DataLoader(dataset, batch_size=2)
    evaluator = COCOEvaluator(loader, (128, 160), confthre=0.01, nmsthre=0.65, num_classes=len(dataset.class_ids))
    single = evaluator.evaluate(OracleModel(*coco_truth(dataset), (128, 160), len(dataset.class_ids), jitter=0.2))[:2]
    assert 0.05 < single[0] < 0.95

    # fork keeps the test fast: the children need not import torch again
    mp.start_processes(
        evaluate_in_process_group,
        args=(2, str(tmp_path / "rendezvous"), str(json_file), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method="fork",
    )
    for rank in range(2):
        assert np.load(tmp_path / f"rank{rank}.npy").tolist() == pytest.approx(list(single), abs=1e-12)
