"""Building an extractor from a feature request: the one place the runner and the CLI do it.

A request names an extractor and its options (a method config's ``features: {m: {extractor,
options}}`` or ``bench features extract -e NAME --option k=v``); options are checked against
what the extractor accepts before anything is read.
"""

from __future__ import annotations

import inspect

from ..errors import ConfigError
from ..interfaces import FeatureRequest
from ..registry import get_feature
from ..validate import check_device

# Set by the command line (--device, --batch-size), never by a config's options.
RUNTIME_OPTIONS = {"device": "--device", "model_batch": "--batch-size"}


def extractor_options(cls) -> list[str]:
    """The options a feature request may give an extractor: its ``config_options`` when it
    declares them, else the keyword parameters of its constructor."""
    declared = getattr(cls, "config_options", None)
    if declared is not None:
        return list(declared)
    params = inspect.signature(cls.__init__).parameters.values()
    return [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_options(req: FeatureRequest):
    """The extractor class of ``req``, after checking that it takes every option given."""
    cls = get_feature(req.extractor)
    if req.options:
        accepted = extractor_options(cls)
        unknown = [k for k in req.options if k not in accepted]
        if unknown:
            raise ConfigError(f"extractor {req.extractor} has no option {unknown[0]!r} (features ... options: "
                              f"{dict(req.options)})",
                              fix=f"its options are: {', '.join(accepted) or '(none)'}; remove or rename {unknown[0]!r}")
    return cls


def _check_device(name: str, device: str, params) -> dict:
    check_device(device)
    if "device" in params:
        return {"device": device}
    if device != "cpu":
        raise ConfigError(f"extractor {name} runs on the CPU only", fix="drop --device")
    return {}


def make_extractor(req: FeatureRequest, device: str | None = None, batch_size: int | None = None,
                   only_requested_level: bool = False):
    """The extractor ``req`` names, built with its options (no options: the extractor's defaults,
    so its cache key is the usual one); ``device`` and ``batch_size`` (utterances per model
    batch) where the command line sets them. ``only_requested_level``: an extractor whose frames
    cost extra (``with_frames``, e.g. openSMILE's LLDs) skips them when ``req`` reads pooled
    features (a cache entry of its own)."""
    for key, flag in RUNTIME_OPTIONS.items():
        if key in req.options:
            raise ConfigError(f"option {key} of extractor {req.extractor} is not a feature option", fix=f"set it with {flag}")
    cls = check_options(req)
    params = inspect.signature(cls.__init__).parameters
    kwargs = _check_device(req.extractor, device, params) if device is not None else {}
    if batch_size is not None and "model_batch" in params:
        kwargs["model_batch"] = batch_size
    if only_requested_level and req.level == "pooled" and "with_frames" in params:
        kwargs["with_frames"] = False
    try:
        ext = cls(**kwargs, **req.options)
    except TypeError as e:
        raise ConfigError(f"extractor {req.extractor}: bad options {dict(req.options)}: {e}",
                          fix=f"its options are: {', '.join(extractor_options(cls)) or '(none)'}") from None
    if batch_size is not None and "model_batch" not in params:
        ext.batch_size = batch_size
    return ext
