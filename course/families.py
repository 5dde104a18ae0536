"""Chapter 05: our small-data ranking of the families set beside the papers' ImageNet ranking.

A paper point and one of our variants are compared only when they are the same network at the
same width (and, for ShuffleNet V1, the same number of groups): a paper's 1.0× says nothing about
our 0.5×. ``compare_rankings`` orders the comparable models by our test accuracy and by the
papers' top-1, pair by pair and as Kendall's τ, and does the same for our measured latency against
the papers' mult-adds; ``sentences`` says the result in words, computed from those numbers.
"""

from __future__ import annotations

import math
import re
from itertools import combinations

from course.ablations import ABLATIONS, PAPER_POINTS, build_variant, difference
from course.device import resolve_device
from course.env import quick_mode
from course.measure import latency
from course.tables import text_table

__all__ = ["describe_run", "format_summary", "PAPER_FAMILIES", "paper_spec", "match_papers", "kendall_tau", "compare_rankings", "sentences",
           "accuracy_per_ms", "gpu_latencies"]

PAPER_FAMILIES = {"MobileNet V1": "mobilenet_v1", "MobileNet V2": "mobilenet_v2",
                  "MobileNet V3-Large": "mobilenet_v3_large", "MobileNet V3-Small": "mobilenet_v3_small",
                  "ShuffleNet V1": "shufflenet_v1", "ShuffleNet V2": "shufflenet_v2"}
_LABEL = re.compile(r"^(?P<family>.+?) (?P<width>\d+(?:\.\d+)?)×?(?: g=(?P<groups>\d+))?$")
_DEFAULT_GROUPS = {"shufflenet_v1": 3}  # course.models.ShuffleNetV1's default


def paper_spec(label: str) -> tuple[str, float, int | None]:
    """``(model name, width, groups)`` of a paper point label such as ``"ShuffleNet V1 0.5× g=3"``."""
    m = _LABEL.match(label)
    if m is None or m["family"] not in PAPER_FAMILIES:
        raise ValueError(f"label must read '<family> <width>[×][ g=<groups>]' with a family of "
                         f"{list(PAPER_FAMILIES)}, got {label!r}")
    model = PAPER_FAMILIES[m["family"]]
    groups = int(m["groups"]) if m["groups"] else _DEFAULT_GROUPS.get(model)
    return model, float(m["width"]), groups


def _groups(v) -> int | None:
    return dict(v.model_kwargs).get("groups", _DEFAULT_GROUPS.get(v.model))


def match_papers(name: str = "ch05_families", papers=PAPER_POINTS) -> list[dict]:
    """For each variant of ``ABLATIONS[name]``: the paper point of the same network and width, or the nearest width.

    Rows: ``label``, ``model``, ``width``, ``paper`` (the point, exact match only), ``nearest`` (the
    family's point of the closest width when there is no exact one, else None).
    """
    if name not in ABLATIONS:
        raise ValueError(f"name must be one of {list(ABLATIONS)}, got {name!r}")
    specs = [(p, *paper_spec(p["label"])) for p in papers]
    out = []
    for v in ABLATIONS[name].variants:
        same = [(p, w) for p, model, w, g in specs if model == v.model and g == _groups(v)]
        exact = [p for p, w in same if math.isclose(w, v.width_mult)]
        nearest = min(same, key=lambda pw: abs(pw[1] - v.width_mult))[0] if same and not exact else None
        out.append(dict(label=v.label, model=v.model, width=v.width_mult, paper=exact[0] if exact else None,
                        nearest=nearest))
    return out


def kendall_tau(xs, ys) -> dict:
    """Kendall's τ-a of two orderings: (concordant − discordant) / pairs; a pair tied in either is neither."""
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys must have the same length, got {len(xs)} and {len(ys)}")
    conc = disc = tied = 0
    for i, j in combinations(range(len(xs)), 2):
        s = (xs[i] - xs[j]) * (ys[i] - ys[j])
        conc, disc, tied = conc + (s > 0), disc + (s < 0), tied + (s == 0)
    n = conc + disc + tied
    return dict(tau=(conc - disc) / n if n else float("nan"), concordant=conc, discordant=disc, tied=tied, n_pairs=n)


def _pairs(rows, ours, theirs, summary=None):
    out = []
    for a, b in combinations(rows, 2):
        d_ours, d_paper = ours(a) - ours(b), theirs(a) - theirs(b)
        real = difference(summary, a["label"], b["label"]) if summary is not None else None
        if d_paper == 0 or d_ours == 0:
            status = "tie"
        elif real is not None and min(a["seeds"], b["seeds"]) >= 2 and not real["real"]:
            status = "within spread"
        else:
            status = "agree" if (d_ours > 0) == (d_paper > 0) else "disagree"
        out.append(dict(a=a["label"], b=b["label"], ours=d_ours, paper=d_paper, status=status,
                        words=real["words"] if real else ""))
    return out


def compare_rankings(summary: list[dict], name: str = "ch05_families", papers=PAPER_POINTS) -> dict:
    """Our accuracy order of the comparable models against the papers' top-1, and three cost orders.

    ``accuracy``: our test accuracy vs the papers' top-1; ``macs``: our mult-adds (at our size) vs the
    papers' (224 px); ``speed``: our CPU latency vs our own mult-adds, over every variant (when
    ``summary`` has ``latency_ms``), the chapter's question on our machine.
    ``summary``: rows of ``course.ablations.summarize``; variants it lacks (an older run) are listed
    in ``missing`` and left out.
    Accuracy pairs whose gap is within twice the seed-to-seed spread (two seeds or more) count as
    ``within spread``; with one seed every order is a point estimate and is counted as measured.
    """
    matches = match_papers(name, papers)
    by_label = {r["label"]: r for r in summary}
    missing = [m["label"] for m in matches if m["label"] not in by_label]
    if len(missing) == len(matches):
        raise ValueError(f"summary must hold rows of {name!r} (labels {[m['label'] for m in matches]}), "
                         f"got labels {list(by_label)}")
    matches = [m for m in matches if m["label"] in by_label]
    summary = [r for r in summary if r["label"] in {m["label"] for m in matches}]  # not another set's rows
    comparable = [dict(by_label[m["label"]], paper=m["paper"]) for m in matches if m["paper"]]
    acc = _pairs(comparable, lambda r: r["test_acc"], lambda r: r["paper"]["top1"], summary)
    tau_acc = kendall_tau([r["test_acc"] for r in comparable], [r["paper"]["top1"] for r in comparable])
    macs = dict(pairs=_pairs(comparable, lambda r: -r["macs"], lambda r: -r["paper"]["madds"]),
                **kendall_tau([r["macs"] for r in comparable], [r["paper"]["madds"] for r in comparable]))
    speed = None
    if all("latency_ms" in r for r in summary):
        speed = dict(pairs=_pairs(summary, lambda r: -r["latency_ms"], lambda r: -r["macs"]),
                     **kendall_tau([r["latency_ms"] for r in summary], [r["macs"] for r in summary]))
    return dict(name=name, missing=missing, comparable=[(r["label"], r["paper"]["label"]) for r in comparable],
                not_comparable=[(m["label"], m["nearest"]["label"] if m["nearest"] else None)
                                for m in matches if not m["paper"]],
                speed_labels=[r["label"] for r in summary], seeds=min(r["seeds"] for r in summary),
                imgsz=sorted({r["imgsz"] for r in summary}),
                accuracy=dict(pairs=acc, **tau_acc), macs=macs, speed=speed)


def _count(pairs, status):
    return sum(p["status"] == status for p in pairs)


def sentences(comparison: dict, max_listed: int = 3) -> list[str]:
    """The comparison in words: what was comparable, how far the rankings agree, each disagreement named."""
    c, acc = comparison, comparison["accuracy"]
    out = [f"Comparable: {len(c['comparable'])} of our models have a paper point at the same width "
           f"({', '.join(p for _, p in c['comparable'])})."]
    if c["not_comparable"]:
        out.append("Left out of the ranking, the papers give no point at our width: " + "; ".join(
            f"{ours}" + (f" (nearest paper point: {near})" if near else "") for ours, near in c["not_comparable"]) + ".")
    if c["missing"]:
        out.append(f"Not in this run (the set has changed since): {', '.join(c['missing'])}.")
    if not acc["pairs"]:
        out.append("Fewer than two comparable models: no ranking to compare.")
        return out
    out.append(f"Accuracy: our Glyphs-10 order and the papers' ImageNet order agree on {_count(acc['pairs'], 'agree')} "
               f"of {len(acc['pairs'])} pairs and disagree on {_count(acc['pairs'], 'disagree')} "
               f"(Kendall τ of the means {acc['tau']:+.2f}; {_count(acc['pairs'], 'tie')} tied"
               + (f", {_count(acc['pairs'], 'within spread')} within twice the seed-to-seed spread" if c["seeds"] >= 2
                  else "; one seed each, so every order is a point estimate, not a measured difference") + ").")
    for p in acc["pairs"]:
        if p["status"] == "disagree":
            hi, lo = (p["a"], p["b"]) if p["paper"] > 0 else (p["b"], p["a"])
            out.append(f"The papers put {hi} above {lo} ({abs(p['paper']):.1f} top-1 points on ImageNet); "
                       f"here {lo} is ahead by {100 * abs(p['ours']):.1f} points.")
    m = c["macs"]
    out.append(f"Cost: our mult-adds at {'/'.join(map(str, c['imgsz']))} px order these models as the papers' at 224 px "
               f"in {_count(m['pairs'], 'agree')} of {len(m['pairs'])} pairs (Kendall τ = {m['tau']:+.2f}).")
    if c["speed"]:
        sp, flipped = c["speed"], [p for p in c["speed"]["pairs"] if p["status"] == "disagree"]
        out.append(f"Speed: across all {len(c['speed_labels'])} of our models, {len(flipped)} of {len(sp['pairs'])} pairs "
                   f"run in the opposite order of their mult-adds on this CPU (τ of latency vs mult-adds "
                   f"{sp['tau']:+.2f})" + (":" if flipped else "."))
        for p in flipped[:max_listed]:
            cheap, dear = (p["a"], p["b"]) if p["paper"] > 0 else (p["b"], p["a"])
            out.append(f"  {cheap} has fewer mult-adds than {dear} yet takes {abs(p['ours']):.2f} ms longer.")
        if len(flipped) > max_listed:
            out.append(f"  … and {len(flipped) - max_listed} more such pairs.")
    out.append(f"Our networks see {'/'.join(map(str, c['imgsz']))} px images of 10 classes after one short "
               "training run; the papers' see 224 px ImageNet after days of training: what can agree is the order, not the numbers.")
    return out


def accuracy_per_ms(summary: list[dict]) -> list[dict]:
    """Each variant's test accuracy points per millisecond of CPU latency, best first."""
    rows = [dict(label=r["label"], acc_per_ms=100 * r["test_acc"] / r["latency_ms"]) for r in summary]
    return sorted(rows, key=lambda r: -r["acc_per_ms"])


def gpu_latencies(summary: list[dict], name: str = "ch05_families", device="auto", batch: int = 1,
                  min_run_time: float | None = None) -> tuple[list[dict] | None, str]:
    """``summary`` with ``gpu_latency_ms`` added (batch ``batch``), or ``(None, why)`` when no GPU is visible."""
    dev, note = resolve_device(device)
    if dev.type != "cuda":
        return None, note or "no CUDA GPU visible: GPU latency not measured (CPU latency only)"
    ablation, out = ABLATIONS[name], []
    for row in summary:
        size = row["imgsz"]
        res = latency(build_variant(ablation.variant(row["label"])).eval(), (batch, 3, size, size), device=dev,
                      min_run_time=min_run_time)
        out.append({**row, "gpu_latency_ms": res.median_ms, "gpu_latency_iqr_ms": res.iqr_ms, "gpu": res.device_name})
    return out, note


def _threads(n) -> str:
    return "threads unknown" if n is None else f"{n} thread{'s' if n != 1 else ''}"


def describe_run(rows: list[dict], summary: list[dict]) -> str:
    """What produced the learner's run: device, threads, torch, seeds, and the latency's settings."""
    r, s = rows[0], summary[0]
    seeds = sorted({x["seed"] for x in rows})
    text = (f"trained on {r['device']} ({_threads(r['threads'])}), torch "
            f"{r['torch_version']}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}, "
            f"{s['imgsz']} px; latency: CPU, batch 1, {_threads(s.get('latency_threads'))}, median of "
            "torch.utils.benchmark runs")
    return ("QUICK MODE (tiny data, one epoch: accuracies near chance, the ranking means nothing): " + text
            if quick_mode() else text)


def format_summary(summary: list[dict]) -> str:
    """The run as a table: accuracy, cost, latency and accuracy per millisecond."""
    per_ms = {r["label"]: r["acc_per_ms"] for r in accuracy_per_ms(summary)} if all(
        "latency_ms" in r for r in summary) else {}
    rows = [dict(r, acc=100 * r["test_acc"], std=100 * r["test_acc_std"] if r["seeds"] > 1 else None,
                 mmacs=r["macs"] / 1e6, per_ms=per_ms.get(r["label"])) for r in summary]
    return text_table(rows, dict(label="model", acc="test acc %", std="± std", params="params", mmacs="M mult-adds",
                                 latency_ms="CPU ms", per_ms="acc %/ms"),
                      formats=dict(acc="{:.1f}", std="{:.1f}", mmacs="{:.1f}", latency_ms="{:.2f}", per_ms="{:.2f}",
                                   params="{:,}"))
