"""Ours next to the paper's tables, both normalised to the reference row."""

from __future__ import annotations

from ..tables import text_table
from .paper import PAPER_HARDWARE, paper_speeds
from .schema import validate_results


def normalise(speeds: dict[str, float], reference: str) -> dict[str, float]:
    """Each speed divided by the reference row's speed, so different hardware compares."""
    if reference not in speeds:
        raise ValueError(f"reference must be one of {list(speeds)}, got {reference!r}")
    ref = speeds[reference]
    if not ref or ref <= 0:
        raise ValueError(f"the reference speed must be positive, got {reference!r} = {ref!r}")
    return {k: v / ref for k, v in speeds.items()}


def _check_timing(results: dict, timing: str) -> None:
    if timing not in results["meta"]["timings"]:
        raise ValueError(f"timing must be one of {results['meta']['timings']} for these results, got {timing!r}")


def compare_with_paper(results: dict, timing: str = "eager") -> list[dict]:
    """Ours vs the paper side by side, both normalised to the paper's reference row.

    The paper column is the one whose channel list we ran (GPU lists → GTX 1080Ti column,
    ARM/CPU lists → Snapdragon 810 column). ``ours_lo``/``ours_hi`` come from the IQR of our
    times divided by the reference's median.
    """
    validate_results(results)
    _check_timing(results, timing)
    hw = results["meta"]["channel_list"]
    rows = []
    for g, block in results["guidelines"].items():
        ref = block["reference"]
        for s in results["meta"]["scales"]:
            pts = {p["variant"]: p for p in block["points"] if p["scale"] == s}
            ours = {n: p["timing"][timing] for n, p in pts.items()}
            ref_speed = ours[ref]["speed"]
            paper = normalise(paper_speeds(g, hw, s), ref)
            for n in block["variants"]:
                o = ours[n]
                rows.append({
                    "guideline": g, "scale": s, "variant": n, "channels": pts[n]["channels"], "flops": pts[n]["flops"],
                    "ours_speed": o["speed"], "ours_norm": o["speed"] / ref_speed,
                    "ours_lo": o["speed_lo"] / ref_speed, "ours_hi": o["speed_hi"] / ref_speed,
                    "paper_speed": paper_speeds(g, hw, s)[n], "paper_norm": paper[n],
                })
    return rows


def comparison_table(results: dict, timing: str = "eager") -> str:
    """``compare_with_paper`` as a text table with the measurement conditions on top."""
    m = results["meta"]
    cpu = f" [{m['cpu_model']}]" if m.get("cpu_model") and m["device"] == "cpu" else ""
    head = (f"{m['device_name']}{cpu} | torch {m['torch_version']} | {m['threads']} threads | batch {m['batch']} | "
            f"{m['speed_unit']} | timing: {timing} | channel lists: paper {m['channel_list'].upper()} | "
            f"paper column: {PAPER_HARDWARE[m['channel_list']]}" + (" | QUICK MODE" if m["quick"] else ""))
    rows = [{**r, "channels": tuple(r["channels"]), "mflops": r["flops"] / 1e6,
             "ours_norm_iqr": f"{r['ours_norm']:.2f} [{r['ours_lo']:.2f}–{r['ours_hi']:.2f}]"}
            for r in compare_with_paper(results, timing)]
    return text_table(rows, {"guideline": "guideline", "scale": "scale", "variant": "variant", "channels": "channels",
                             "mflops": "MFLOPs", "ours_speed": f"ours ({m['speed_unit']})",
                             "ours_norm_iqr": "ours norm. [IQR]", "paper_speed": "paper", "paper_norm": "paper norm."},
                      formats={"scale": "×{}", "mflops": "{:.1f}", "ours_speed": "{:.1f}", "paper_speed": "{:g}",
                               "paper_norm": "{:.2f}"}, title=head + "\n", align={"variant": "<"})
