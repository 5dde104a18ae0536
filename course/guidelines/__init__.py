"""The four ShuffleNet V2 guidelines (G1–G4) as the paper's controlled experiments.

Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018 (https://arxiv.org/abs/1807.11164), Sec. 2 and Tables 1–4. Each
experiment stacks ten small blocks that differ in one respect while FLOPs stay (nearly) fixed,
and times them: the point is that equal FLOPs do not mean equal speed.

- G1 (Table 1): equal channel width minimises memory access cost (c1:c2 = 1:1 … 1:12).
- G2 (Table 2): excessive group convolution increases MAC (g = 1 … 8).
- G3 (Table 3): network fragmentation reduces parallelism (1–4 convs, series or parallel).
- G4 (Table 4): element-wise operations (ReLU, shortcut add) are not free.

Choices the paper leaves open, made here and stated in the results:

- Scales ×1/×2/×4 multiply the "×1" channel counts by 1/2/4: the captions do not define them,
  but only this reading makes Table 2's g = 1 row match Table 3's 1-fragment row at c = 128/256/512.
- Every conv is followed by batch norm (and ReLU, except where G4 removes it), as in a real
  network. FLOPs are fvcore multiply-adds of the convs (``course.measure.count_flops``, which
  leaves batch norm out, like the papers).
- G3: the k-fragment structures (series and parallel) use c_k = round(c / √k) channels, so
  k convs of c_k² hold k·c_k² ≈ c² (the 1-fragment FLOPs). Parallel branches all read the block
  input and are summed (``g3_merge="add"``). ``g3_merge="concat"`` is the other reading of
  Appendix Fig. 1: each branch makes c/k channels, concatenated, FLOPs equal without adjusting c.
- G4: a ResNet bottleneck whose input/output has c channels and whose inner width is
  c / ``expansion`` (ResNet's 4). The paper gives no input size for Table 4; we use 56×56 like
  Tables 1–3.
- Table 1's own channel lists hold FLOPs only to 5.1 % (GPU: c1·c2 = 16384 … 15552) and 5.5 %
  (ARM: 1024 … 968); we keep the paper's channels, so G1's FLOPs spread is the paper's.
- Table 2's ARM list pairs c = 180 with g = 8, which 8 does not divide; we use 184 (FLOPs +3.3 %
  against g = 1; 176 would be −5.5 %). Every other G2–G4 row holds FLOPs within 2 %.

Speeds are in the paper's units: GPU batches/s at batch 8, CPU images/s at batch 1 (one thread
by default, like the paper's ARM runs). Times are the median and IQR of
``course.measure.latency`` (the paper reports the mean of 100 runs).
"""


from .cli import main
from .compare import compare_with_paper, comparison_table, normalise
from .experiments import Variant, flops_spread, variants
from .networks import Bottleneck, FragmentBlock, g1_net, g2_channels, g2_net, g3_channels, g3_net, g4_net
from .paper import GUIDELINES, INPUT_HW, PAPER_SOURCE, PAPER_TABLES, SCALES, paper_speeds
from .plots import plot_guidelines
from .runner import TIMING_NOTES, run_guidelines
from .schema import SCHEMA, load_results, save_results, validate_results
from .verdict import verdicts

__all__ = [
    "GUIDELINES",
    "PAPER_TABLES",
    "PAPER_SOURCE",
    "INPUT_HW",
    "Variant",
    "g1_net",
    "g2_net",
    "g2_channels",
    "g3_channels",
    "g3_net",
    "g4_net",
    "FragmentBlock",
    "Bottleneck",
    "variants",
    "flops_spread",
    "run_guidelines",
    "normalise",
    "paper_speeds",
    "SCALES",
    "TIMING_NOTES",
    "SCHEMA",
    "compare_with_paper",
    "comparison_table",
    "verdicts",
    "plot_guidelines",
    "validate_results",
    "load_results",
    "save_results",
    "main",
]
