"""The names a model YAML may use, and how ``parse_model`` computes each one's channels.

yolov5 ``eval``s module names in ``models/yolo.py``'s namespace and keeps the channel rules in
an ``if m in {...}`` chain, so a new block fails twice over: ``NameError`` until it is imported,
then silently wrong channels until it is added to the chain (ultralytics/yolov5 issues #5320, #398
and #1627 on GitHub). Here a block is registered once, with its channel rule, and a YAML is only data.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

# How the output channels c2 of a layer follow from its inputs and args:
#   "scaled":      c1 = ch[from] is prepended to args; c2 = make_divisible(args[0] * width_multiple, 8)
#   "sum":         c2 = sum of the input layers' channels (Concat)
#   "same_width":  all inputs must have one width, which is c2 (ADD)
#   "passthrough": c2 = c1, args passed as written (nn.Upsample)
#   "detect":      the input layers' channels are appended to args (Detect)
CHANNEL_RULES = ("scaled", "sum", "same_width", "passthrough", "detect")


class ModelConfigError(ValueError):
    """A model YAML that cannot be built; the message names the layer, module and indices/channels."""


@dataclass(frozen=True)
class Spec:
    cls: type[nn.Module]
    channels: str
    repeat_inside: bool = False  # C3-style: the repeat count becomes the block's own argument
    stride_arg: int | None = None  # position of the stride in the built args (after c1, c2)


REGISTRY: dict[str, Spec] = {}


def register_module(name: str, cls: type[nn.Module], channels: str = "scaled", repeat_inside: bool = False,
                    stride_arg: int | None = None) -> None:
    """Make ``cls`` available to YAMLs as ``name`` with the given channel rule (see ``CHANNEL_RULES``)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name={name!r}; expected a non-empty string")
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ValueError(f"cls={cls!r}; expected an nn.Module subclass")
    if channels not in CHANNEL_RULES:
        raise ValueError(f"channels={channels!r}; allowed: {', '.join(CHANNEL_RULES)}")
    if repeat_inside and channels != "scaled":
        raise ValueError(f"repeat_inside=True needs channels='scaled', got channels={channels!r}")
    REGISTRY[name] = Spec(cls, channels, repeat_inside, stride_arg)


def register(name: str, channels: str = "scaled", repeat_inside: bool = False, stride_arg: int | None = None):
    """Class decorator form of ``register_module``: ``@register("C3", repeat_inside=True)``."""
    def deco(cls):
        register_module(name, cls, channels, repeat_inside, stride_arg)
        return cls
    return deco


def lookup(name, layer: int) -> Spec:
    if not isinstance(name, str) or name not in REGISTRY:
        raise ModelConfigError(f"layer {layer}: module {name!r} is not registered; registered: "
                               f"{', '.join(sorted(REGISTRY))} (add one with course.yolo.register)")
    return REGISTRY[name]


register_module("nn.Upsample", nn.Upsample, channels="passthrough")
