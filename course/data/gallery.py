"""A grid of samples, one row per class: what the learner looks at before training on a dataset."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from course.data.glyphs import to_image


def _targets(dataset) -> np.ndarray:
    if hasattr(dataset, "targets"):
        return np.asarray(dataset.targets)
    return np.array([dataset[i][1] for i in range(len(dataset))])


def class_grid(dataset, per_class: int = 8, scale: float = 0.9):
    """Figure with the first ``per_class`` samples of each class of ``dataset`` (which has ``classes``).

    Samples are normalised tensors as ``GlyphDataset`` and ``ImageFolderChecked`` give them.
    """
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise ValueError(f"per_class must be a positive int, got {per_class!r}")
    classes = list(dataset.classes)
    targets = _targets(dataset)
    fig, axes = plt.subplots(len(classes), per_class, figsize=(per_class * scale + 2.2, len(classes) * scale),
                             squeeze=False)
    for k, name in enumerate(classes):
        idx = np.flatnonzero(targets == k)[:per_class]
        for j, ax in enumerate(axes[k]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(idx):
                ax.imshow(to_image(dataset[int(idx[j])][0]), interpolation="nearest")
        axes[k, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8)
    fig.subplots_adjust(left=2.0 / (per_class * scale + 2.2), right=0.99, top=0.99, bottom=0.01,
                        wspace=0.05, hspace=0.05)
    return fig
