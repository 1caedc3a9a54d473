"""One side of the train-step comparison: times forward, backward and optimizer step of ``get_exp(None, name)``.

Run by path with either interpreter (this project's, or a venv holding the official ``yolox==0.3.0``), so it
uses only what both packages share: ``yolox.exp.get_exp``, ``exp.get_model()``, ``exp.get_optimizer()`` and
the training forward that returns a dict with ``total_loss``. It reads one JSON request per stdin line
(``{"steps": k}``) and answers each with one JSON line of per-step phase seconds; the parent
(:mod:`yolox.benchmarks.official`) alternates the two sides, so both see the same machine state.
"""

import argparse
import json
import sys
import time

import torch


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The worker's settings, given by the parent process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp-name", required=True, help="official model name, e.g. yolox-nano")
    parser.add_argument("--batch", required=True, help="torch.save file with 'images' and 'targets'")
    parser.add_argument("--weights", required=True, help="state dict to load, or to write with --save-weights")
    parser.add_argument("--save-weights", action="store_true", help="build the model with seed 0 and write it")
    parser.add_argument("--threads", type=int, required=True, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--overrides", nargs="*", default=[], help="exp key value pairs (exp.merge)")
    return parser.parse_args(argv)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so the clock reads the real duration."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str]) -> int:
    """Build the model, answer the parent's requests until stdin closes."""
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import yolox
    from yolox.exp import get_exp

    device = torch.device(args.device)
    torch.manual_seed(0)
    exp = get_exp(None, args.exp_name)
    exp.merge(args.overrides)
    model = exp.get_model()
    if hasattr(exp, "bn_memory_saving"):  # this project's exp key, applied as its trainer applies it
        from yolox.models.network_blocks import apply_bn_memory_saving

        apply_bn_memory_saving(model, exp)
    if args.save_weights:
        torch.save(model.state_dict(), args.weights)
    else:
        model.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True), strict=True)
    model.to(device).train()
    batch = torch.load(args.batch, map_location="cpu", weights_only=True)
    images, targets = batch["images"].to(device), batch["targets"].to(device)
    optimizer = exp.get_optimizer(images.shape[0])
    for group in optimizer.param_groups:  # the post-warm-up rate: an lr of 0 would still do every operation
        group["lr"] = exp.basic_lr_per_img * images.shape[0]
    print(json.dumps({"ready": True, "yolox": getattr(yolox, "__version__", "?"), "file": yolox.__file__,
                      "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        phases: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": [], "step": []}
        losses = []
        for _ in range(int(request["steps"])):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            outputs = model(images, targets)
            synchronize(device)
            forward_end = time.perf_counter()
            outputs["total_loss"].backward()
            synchronize(device)
            backward_end = time.perf_counter()
            optimizer.step()
            synchronize(device)
            end = time.perf_counter()
            phases["forward"].append(forward_end - start)
            phases["backward"].append(backward_end - forward_end)
            phases["optimizer"].append(end - backward_end)
            phases["step"].append(end - start)
            losses.append(float(outputs["total_loss"].detach()))
        print(json.dumps({"phases": phases, "losses": losses}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
