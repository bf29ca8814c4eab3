"""`omnisift.show`: draw what one or several methods keep of a clip, at the same budget, into one PNG."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .config import DEFAULT_VIDEO_DROP, CompressionConfig
from .inputs import Protocol, effective_protocol, load_video
from .keepmap import keep_map
from .loading import LoadedModel, load_model
from .methods import METHODS, shortcuts_for, takes_setting
from .output_paths import check_output_file
from .picture import Picture, draw

__all__ = ["show", "DEFAULT_RETAIN"]

logger = logging.getLogger(__name__)

DEFAULT_RETAIN = 0.35


def _selector_for(loaded: LoadedModel, selector: Any) -> Any:
    """The given selector; the checkpoint's own; a seeded random one for random-weight fixtures."""
    if selector is not None:
        return selector
    if loaded.random_weights:
        from .selector import RANDOM_SELECTOR, source_selector

        hidden = loaded.thinker.config.text_config.hidden_size
        module = source_selector(RANDOM_SELECTOR, hidden_size=hidden, seed=0).eval()
        return module.to(device=loaded.thinker.device, dtype=loaded.thinker.dtype)
    return loaded.selector_source


def _protocol(loaded: LoadedModel, max_pixels: int | None) -> Protocol:
    """The paper's protocol as this model runs it (a fixture's small frames), with `max_pixels` if given."""
    protocol = effective_protocol(Protocol(), loaded, loaded.processor)
    if max_pixels is None:
        return protocol
    sampling = protocol.sampling
    # The floor follows a lower cap, but never below 1: a bad cap (0, -1) is then refused by its own name.
    low = max(1, min(sampling.min_pixels, max_pixels)) if isinstance(max_pixels, int) else sampling.min_pixels
    return replace(protocol, sampling=replace(sampling, min_pixels=low, max_pixels=max_pixels))


def _params_per_method(names: list[str], params: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each method's share of `params` (the settings it takes), so methods side by side can carry their own
    (`k` for fastv, `drop_layers` for seats); a setting none of them takes is an error, not ignored."""
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        return {name: dict(params) for name in names}  # CompressionConfig names the unknown method
    unused = [key for key in params if not any(takes_setting(name, key) for name in names)]
    if unused:
        raise ValueError(
            f"method setting(s) {', '.join(unused)} are taken by none of {', '.join(names)}; "
            "`omnisift methods` lists each method's settings."
        )
    return {name: {k: v for k, v in params.items() if takes_setting(name, k)} for name in names}


def show(
    video: str | Path | None,
    out: str | Path,
    *,
    model: str | Path | LoadedModel = "tiny",
    methods: str | Sequence[str] = ("omnisift",),
    retain: float | None = DEFAULT_RETAIN,
    audio_drop: float = 0.3,
    video_drop: float = DEFAULT_VIDEO_DROP,
    selector: Any = None,
    method_params: dict[str, Any] | None = None,
    max_pixels: int | None = None,
    seconds: float = 20.0,
    device: str | None = None,
    dtype: str | torch.dtype | None = None,
    prompt: str = "What happens in this video, and what do you hear?",
) -> Picture:
    """Write one PNG of what each of `methods` keeps of `video` at the same budget (see `Picture`).

    `retain` (when given) overrides `video_drop`, as in `CompressionConfig`.
    `video` None draws the demo's generated clip (`seconds` long, in a temporary folder removed after). `model` is a checkpoint folder, a
    fixture name ("tiny", "tiny-qwen3-omni") or an already loaded model. `max_pixels` caps the pixels of
    a processed frame (more pixels: more, smaller patches). `method_params` go to the methods that take
    them. Inner-LLM methods get one row per stage (the LLM input, then each reduced layer); their layers
    must exist in the model (`seats` needs 5 or more LLM layers). Needs the ``show`` extra (matplotlib).
    """
    from ._extras import require

    require("matplotlib", "show")  # before any model work: a missing extra fails at once
    check_output_file(out, "--out")
    names = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    if not names or not all(names):
        raise ValueError(f"methods={methods!r}: name at least one method (`omnisift methods` lists them).")
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device=device, dtype=dtype)
    thinker = loaded.thinker.eval()
    protocol = _protocol(loaded, max_pixels)
    with tempfile.TemporaryDirectory(prefix="omnisift-show-") as scratch:  # decoded, the clip can go
        if video is None:
            from .testing.clips import make_clip

            video = make_clip(Path(scratch) / "clip.mp4", seconds, fps=2.0)
        media = load_video(video, protocol)
    chosen_selector = _selector_for(loaded, selector)
    params = _params_per_method(names, dict(method_params or {}))
    maps = []
    for name in names:
        config = CompressionConfig(
            method=name,
            retain=retain,
            audio_drop=audio_drop,
            video_drop=video_drop,
            **shortcuts_for(name, selector=chosen_selector),
            method_params=params[name],
        )
        maps.append(keep_map(thinker, loaded.processor, media, config, protocol, prompt=prompt))
    weights = "random weights" if loaded.random_weights else "trained"
    title = f"What each method keeps: {Path(video).name}, {maps[0].family} ({weights})"
    return draw(maps, out, title=title)
