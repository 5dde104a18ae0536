"""One plain sentence per guideline, computed from the measured numbers and the paper's."""

from __future__ import annotations

from typing import Sequence

from .compare import _check_timing
from .paper import paper_speeds
from .schema import validate_results


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _is(items: Sequence[str]) -> str:
    return "is" if len(items) == 1 else "are"


def _rel_half_iqr(t: dict) -> float:
    return (t["speed_hi"] - t["speed_lo"]) / (2 * t["speed"])


def verdicts(results: dict, timing: str = "eager", min_noise: float = 0.03) -> dict[str, str]:
    """One plain sentence per guideline, computed from the measured numbers and the paper's.

    Two speeds are "within noise" when they differ by less than the sum of their relative
    half-IQRs, or less than ``min_noise`` (a floor for run-to-run drift on a shared machine).
    The paper's "fastest" is the top of its column (ties kept). The last clause compares the
    last variant of each table (the most extreme one) to the reference, ours vs the paper's.
    """
    validate_results(results)
    _check_timing(results, timing)
    if not (isinstance(min_noise, (int, float)) and 0 <= min_noise < 1):
        raise ValueError(f"min_noise must be a fraction in [0, 1), got {min_noise!r}")
    m = results["meta"]
    hw = m["channel_list"]
    where = "on this GPU" if m["hardware"] == "gpu" else "on this CPU"
    paper_hw = "GPU" if hw == "gpu" else "ARM"
    out = {}
    for g, block in results["guidelines"].items():
        ref, names = block["reference"], block["variants"]
        clauses: dict[str, list[str]] = {}
        extreme = names[-1]
        ratios_ours, ratios_paper = [], []
        for s in m["scales"]:
            t = {p["variant"]: p["timing"][timing] for p in block["points"] if p["scale"] == s}
            best = max(names, key=lambda n: t[n]["speed"])
            ties = [n for n in names if n != best and
                    1 - t[n]["speed"] / t[best]["speed"] <= max(min_noise, _rel_half_iqr(t[n]) + _rel_half_iqr(t[best]))]
            pspeed = paper_speeds(g, hw, s)
            ptop = max(pspeed.values())
            paper_best = [n for n in names if pspeed[n] == ptop]
            paper_said = (f"as the paper found on its {paper_hw}" if len(paper_best) == 1 else
                          f"one of the paper's {paper_hw} fastest, where {_join(paper_best)} tie")
            close_best = [n for n in paper_best if n in ties]
            if best in paper_best and not ties:
                c = f"{best} is fastest, {paper_said}"
            elif best in paper_best:
                c = f"{best} is fastest, {paper_said}, but {_join(ties)} {_is(ties)} within noise of it"
            elif close_best:
                c = (f"{best} is nominally fastest, and {_join(close_best)} (the paper's {paper_hw} fastest) "
                     f"{_is(close_best)} within noise of it")
            else:
                c = (f"{best} is fastest, unlike the paper's {paper_hw} where {_join(paper_best)} "
                     f"{'was' if len(paper_best) == 1 else 'tied'}; {paper_best[0]} runs at "
                     f"{t[paper_best[0]]['speed'] / t[best]['speed']:.2f}× of {best} here")
            clauses.setdefault(c, []).append(f"×{s}")
            ratios_ours.append(f"{t[extreme]['speed'] / t[ref]['speed']:.2f}×")
            ratios_paper.append(f"{pspeed[extreme] / pspeed[ref]:.2f}×")
        body = "; ".join(f"at {_join(sc)}, {c}" for c, sc in clauses.items())
        scales_txt = _join([f"×{s}" for s in m["scales"]])
        out[g] = (f"{g} {where} ({m['device_name']}, batch {m['batch']}, {timing}): {body}. "
                  f"{extreme} runs at {' / '.join(ratios_ours)} the speed of {ref} at {scales_txt} "
                  f"(paper {paper_hw}: {' / '.join(ratios_paper)}).")
    return out
