"""The half of ``benchmarks/peer_yolov5.py`` that runs inside the peer's own venv (ultralytics/yolov5 v7.0).

It never imports ``course`` (the peer's venv does not have it) and the course never imports it.
Two jobs, each given one JSON file of arguments:

* ``train SPEC``: run ``yolov5.train.main`` unmodified, with a ``Callbacks`` object whose hooks
  stamp ``time.perf_counter()`` at the start and end of each epoch's training loop, after its
  validation (``on_fit_epoch_end``), and write one JSON line per epoch to ``SPEC["timings"]``.
* ``export SPEC``: load the peer's checkpoints (they pickle its model classes, so only this venv
  can) and save each EMA model's ``state_dict`` and ``yaml`` as plain tensors and dicts, which
  ``torch.load(weights_only=True)`` reads on the course's side; plus one random input and the
  peer model's decoded output on it, so the course can check the converted model is the same.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def train(spec: dict) -> None:
    import torch

    torch.set_num_threads(spec["threads"])
    from yolov5 import train as peer_train
    from yolov5.utils.callbacks import Callbacks

    torch.set_num_threads(spec["threads"])  # importing yolov5 rewrites OMP_NUM_THREADS; torch keeps ours
    out = Path(spec["timings"])
    out.write_text("")
    stamps: dict = {}

    def epoch_start():
        stamps["train_start"] = time.perf_counter()
        stamps.setdefault("run_start", stamps["train_start"])

    def epoch_end(epoch):
        stamps["train_end"] = time.perf_counter()

    def fit_epoch_end(log_vals, epoch, best_fitness, fi):
        now = time.perf_counter()
        row = dict(epoch=int(epoch), train_s=stamps["train_end"] - stamps["train_start"],
                   val_s=now - stamps["train_end"], elapsed_s=now - stamps["run_start"],
                   peer_map50=float(log_vals[5]), peer_map=float(log_vals[6]), threads=torch.get_num_threads())
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")

    callbacks = Callbacks()
    callbacks.register_action("on_train_epoch_start", "bench", epoch_start)
    callbacks.register_action("on_train_epoch_end", "bench", epoch_end)
    callbacks.register_action("on_fit_epoch_end", "bench", fit_epoch_end)
    sys.argv = ["train.py", *spec["argv"]]
    opt = peer_train.parse_opt(True)
    peer_train.main(opt, callbacks=callbacks)


def export(spec: dict) -> None:
    import torch
    import yolov5

    sys.path.append(str(Path(yolov5.__file__).parent))  # as its train.py does: pickles name top-level `models`

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, spec["imgsz"], spec["imgsz"], generator=gen)
    for src, dst in spec["pairs"]:
        ckpt = torch.load(src, map_location="cpu", weights_only=False)
        model = (ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]).float().eval()
        with torch.no_grad():
            y = model(x)[0]
        torch.save(dict(state_dict=model.state_dict(), yaml=model.yaml, epoch=int(ckpt.get("epoch", -1)),
                        x=x, y=y), dst)


if __name__ == "__main__":
    job, spec_path = sys.argv[1], sys.argv[2]
    {"train": train, "export": export}[job](json.loads(Path(spec_path).read_text()))
