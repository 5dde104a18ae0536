"""Our models against torchvision's, side by side: params, MFLOPs, CPU latency, speed ratio.

Same architecture should mean same speed. Latency is measured for each model alone
(median and IQR), and the ratio ours/torchvision comes from interleaved short rounds
(A, B, A, B, ...) whose per-round ratios are summarised by their median, so slow drifts
in machine load cancel out.

    python benchmarks/models.py [--batch 1] [--size 224] [--rounds 30] [--threads N]
"""

from __future__ import annotations

import argparse
import datetime
import json

import torch

from course.env import device_name, pick, quiet_libraries
from course.measure import count_flops, count_params, interleaved_ratio, latency
from course.models import TORCHVISION_NAMES, build_model, load_torchvision_weights, torchvision_reference


def compare(name: str, batch: int, size: int, rounds: int) -> dict:
    ours, theirs = build_model(name).eval(), torchvision_reference(name).eval()
    load_torchvision_weights(ours, theirs)
    x = torch.randn(batch, 3, size, size)

    def run(model):
        def fn():
            with torch.inference_mode():
                model(x)
        return fn

    ratio = interleaved_ratio(run(ours), run(theirs), rounds=rounds, number=3)
    return {
        "model": name,
        "params_ours": count_params(ours),
        "params_torchvision": count_params(theirs),
        "mflops_ours": count_flops(ours, (1, 3, size, size)) / 1e6,
        "mflops_torchvision": count_flops(theirs, (1, 3, size, size)) / 1e6,
        "latency_ours": latency(ours, (batch, 3, size, size), device="cpu").as_dict(),
        "latency_torchvision": latency(theirs, (batch, 3, size, size), device="cpu").as_dict(),
        "ratio": ratio.ratio,
        "ratio_q1": ratio.q1,
        "ratio_q3": ratio.q3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=pick(30, 5))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=None, help="also write the rows as JSON")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_libraries()
    print(f"{device_name(torch.device('cpu'))} | torch {torch.__version__} | batch {args.batch} | "
          f"{args.size}x{args.size} | {args.rounds} interleaved rounds | {datetime.date.today()}")
    header = f"{'model':<20} {'params':>10} {'MFLOPs':>8} {'ours ms':>9} {'tv ms':>9} {'ours/tv':>8} {'IQR':>13}"
    print(header)
    print("-" * len(header))
    rows = []
    for name in TORCHVISION_NAMES:
        r = compare(name, args.batch, args.size, args.rounds)
        rows.append(r)
        same = "" if r["params_ours"] == r["params_torchvision"] else " (params differ!)"
        print(f"{name:<20} {r['params_ours']:>10,} {r['mflops_ours']:>8.1f} "
              f"{r['latency_ours']['median_ms']:>9.2f} {r['latency_torchvision']['median_ms']:>9.2f} "
              f"{r['ratio']:>8.3f} {r['ratio_q1']:>6.3f}–{r['ratio_q3']:<6.3f}{same}", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": device_name(torch.device("cpu")), "torch": torch.__version__,
                       "date": str(datetime.date.today()), "batch": args.batch, "size": args.size,
                       "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
