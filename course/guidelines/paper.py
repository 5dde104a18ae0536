"""The paper's Tables 1–4: variants, ×1 channel lists, measured speeds, and their conditions.

Ma, Zhang, Zheng, Sun, ShuffleNet V2, ECCV 2018 (https://arxiv.org/abs/1807.11164), Sec. 2.
"""

from __future__ import annotations

from ..validate import check_choice

GUIDELINES = ("G1", "G2", "G3", "G4")
SCALES = (1, 2, 4)
HARDWARE = ("gpu", "cpu")
BLOCKS = 10
INPUT_HW = {"G1": 56, "G2": 56, "G3": 56, "G4": 56}
BATCH = {"gpu": 8, "cpu": 1}
SPEED_UNIT = {"gpu": "batches/s", "cpu": "images/s"}

PAPER_SOURCE = ("Ma, Zhang, Zheng, Sun, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture "
                "Design, ECCV 2018, arXiv:1807.11164")
PAPER_HARDWARE = {
    "gpu": "GTX 1080Ti, cuDNN 7.0 (batches/s, batch 8)",
    "cpu": "ARM Snapdragon 810, 1 thread (images/s, batch 1)",
}

G3_STRUCTURES = {
    "1-fragment": (1, False),
    "2-fragment-series": (2, False),
    "4-fragment-series": (4, False),
    "2-fragment-parallel": (2, True),
    "4-fragment-parallel": (4, True),
}
G4_SWITCHES = {
    "ReLU + shortcut": (True, True),
    "ReLU, no shortcut": (True, False),
    "shortcut, no ReLU": (False, True),
    "no ReLU, no shortcut": (False, False),
}

# Tables 1–4 of the paper, as printed. "channels" are the ×1 counts: (c1, c2) for G1, c for G2,
# c of the 1-fragment block for G3, c of the unit for G4. "cpu" is the paper's ARM phone
# (Table 1 says ARM, Tables 2–4 say CPU: the same Snapdragon 810).
PAPER_TABLES: dict[str, dict] = {
    "G1": {
        "table": "Table 1",
        "title": "G1: equal channel width minimises MAC",
        "variants": ("1:1", "1:2", "1:6", "1:12"),
        "reference": "1:1",
        "channels": {"gpu": ((128, 128), (90, 180), (52, 312), (36, 432)),
                     "cpu": ((32, 32), (22, 44), (13, 78), (9, 108))},
        "speed": {"gpu": {1: (1480, 1296, 876, 748), 2: (723, 586, 489, 392), 4: (232, 206, 189, 163)},
                  "cpu": {1: (76.2, 72.9, 69.1, 57.6), 2: (21.7, 20.5, 17.9, 15.1), 4: (5.3, 5.1, 4.6, 4.4)}},
    },
    "G2": {
        "table": "Table 2",
        "title": "G2: excessive group convolution increases MAC",
        "variants": ("g=1", "g=2", "g=4", "g=8"),
        "reference": "g=1",
        "channels": {"gpu": (128, 180, 256, 360), "cpu": (64, 90, 128, 180)},
        "speed": {"gpu": {1: (2451, 1725, 1026, 634), 2: (1289, 873, 644, 445), 4: (437, 341, 338, 230)},
                  "cpu": {1: (40.0, 35.0, 32.9, 27.8), 2: (10.2, 9.5, 8.7, 7.5), 4: (2.3, 2.2, 2.1, 1.8)}},
    },
    "G3": {
        "table": "Table 3",
        "title": "G3: network fragmentation reduces parallelism",
        "variants": tuple(G3_STRUCTURES),
        "reference": "1-fragment",
        "channels": {"gpu": 128, "cpu": 64},
        "speed": {"gpu": {1: (2446, 1790, 752, 1537, 691), 2: (1274, 909, 745, 803, 572),
                          4: (434, 336, 349, 320, 292)},
                  "cpu": {1: (40.2, 38.6, 38.4, 33.4, 35.0), 2: (10.1, 10.1, 10.1, 9.1, 8.4),
                          4: (2.3, 2.2, 2.3, 2.2, 2.1)}},
    },
    "G4": {
        "table": "Table 4",
        "title": "G4: element-wise operations are non-negligible",
        "variants": tuple(G4_SWITCHES),
        "reference": "ReLU + shortcut",
        "channels": {"gpu": 32, "cpu": 32},
        "speed": {"gpu": {1: (2427, 2647, 2672, 2842), 2: (2066, 2256, 2121, 2376), 4: (1436, 1735, 1458, 1782)},
                  "cpu": {1: (56.7, 61.9, 57.3, 66.3), 2: (16.9, 18.8, 18.2, 20.2), 4: (5.0, 5.2, 5.1, 5.4)}},
    },
}


def _check_hardware(channel_list: str) -> None:
    if channel_list not in HARDWARE:
        raise ValueError(f"channel_list must be 'gpu' or 'cpu' (the paper's GPU or ARM/CPU lists), "
                         f"got {channel_list!r}")


def paper_speeds(guideline: str, hardware: str, scale: int) -> dict[str, float]:
    """One column of the paper's table as {variant: speed}."""
    check_choice("guideline", guideline, GUIDELINES)
    _check_hardware(hardware)
    t = PAPER_TABLES[guideline]
    return dict(zip(t["variants"], t["speed"][hardware][scale]))
