"""A dataset yaml in the YOLOv5/ultralytics layout, read and checked."""

from __future__ import annotations

from pathlib import Path

import yaml


def load_data_config(path) -> dict:
    """Read and check a dataset yaml in the YOLOv5/ultralytics layout.

    Returns ``dict(path, train, val, [test], names: {int: str}, nc, yaml_file)`` with absolute
    ``Path`` s (``train``/``val`` may be lists when the yaml gives lists). ``path:`` defaults to
    the yaml's folder; a relative ``path:`` and relative splits are taken from the yaml's folder
    and from ``path:`` respectively. ``names`` may be a list or a dict; ``nc`` is its length.
    """
    yaml_file = Path(path)
    if not yaml_file.is_file():
        raise ValueError(f"path must be an existing dataset yaml file, got {str(path)!r}")
    cfg = yaml.safe_load(yaml_file.read_text())
    if not isinstance(cfg, dict):
        raise ValueError(f"{yaml_file}: expected a mapping with keys path/train/val/names, got {type(cfg).__name__}")
    for key in ("train", "val", "names"):
        if cfg.get(key) in (None, "", [], {}):
            raise ValueError(f"{yaml_file}: missing required key {key!r} (need train, val and names)")

    names = cfg["names"]
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    elif isinstance(names, dict):
        try:
            names = {int(k): v for k, v in names.items()}
        except (TypeError, ValueError):
            raise ValueError(f"{yaml_file}: key 'names' must map integer class ids to names, "
                             f"got keys {list(names)}") from None
    else:
        raise ValueError(f"{yaml_file}: key 'names' must be a list or a dict, got {type(names).__name__}")
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{yaml_file}: key 'names' must have class ids 0..{len(names) - 1}, got {sorted(names)}")
    names = {k: str(names[k]) for k in sorted(names)}
    nc = len(names)
    if "nc" in cfg and cfg["nc"] is not None and int(cfg["nc"]) != nc:
        raise ValueError(f"{yaml_file}: key 'nc' is {cfg['nc']} but 'names' has {nc} entries")

    base = Path(cfg.get("path") or ".")
    if not base.is_absolute():
        base = (yaml_file.parent / base).resolve()

    def resolve(value):
        if isinstance(value, (list, tuple)):
            return [resolve(v) for v in value]
        p = Path(str(value))
        return p if p.is_absolute() else base / p

    out = {"path": base, "names": names, "nc": nc, "yaml_file": yaml_file.resolve()}
    for key in ("train", "val", "test"):
        if cfg.get(key):
            out[key] = resolve(cfg[key])
    for key in ("train", "val"):
        missing = [str(p) for p in (out[key] if isinstance(out[key], list) else [out[key]]) if not p.exists()]
        if missing:
            raise ValueError(f"{yaml_file}: key {key!r} points to {missing}, which does not exist")
    return out
