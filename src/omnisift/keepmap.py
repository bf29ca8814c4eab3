"""What a method kept of one clip, in the clip's own coordinates: merged patches of each frame grid and
audio tokens on the time axis (the data `omnisift show` draws; no plotting here).

A video token is one merged patch: `spatial_merge_size` x `spatial_merge_size` vision patches, i.e. a
square of `spatial_merge_size * patch_size` pixels of the processed frame. Inside a grid the tokens come
in raster order of those squares, and one grid covers `temporal_patch_size` (2) consecutive sampled
frames, which therefore share one keep mask. Times come from the temporal M-RoPE ids
(`position_ids_per_second` of the family), counted from the first id of the clip.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .attach import attach
from .config import CompressionConfig
from .inputs import Protocol, encode
from .layout import Layout, build_layout
from .media import Media
from .models import ModelAdapter, find_adapter

__all__ = ["GridKeep", "StageKeep", "KeepMap", "keep_map"]

logger = logging.getLogger(__name__)


@dataclass
class GridKeep:
    """One temporal grid of the video: the frames it covers and which merged patches were kept."""

    index: int
    frames: tuple[int, ...]
    """Indices (into `KeepMap.frames`) of the sampled frames this grid covers."""
    start_s: float
    keep: np.ndarray
    """[rows, cols] bool, True = kept, in merged-patch cells of the processed frame."""


@dataclass
class StageKeep:
    """What is present at one point of the model: layer 0 is the LLM input, later layers are inner stages."""

    layer: int
    grids: list[GridKeep]
    audio_keep: np.ndarray
    """[A] bool per audio token, in time order."""

    @property
    def label(self) -> str:
        return "LLM input" if self.layer == 0 else f"from layer {self.layer}"

    @property
    def video_kept(self) -> int:
        return int(sum(g.keep.sum() for g in self.grids))

    @property
    def video_total(self) -> int:
        return int(sum(g.keep.size for g in self.grids))

    @property
    def audio_kept(self) -> int:
        return int(self.audio_keep.sum())


@dataclass
class KeepMap:
    """One method's selection on one clip."""

    method: str
    retain: float | None
    family: str
    frames: np.ndarray
    """uint8 [T, H, W, 3]: the sampled frames at the processed size (H, W = grid cells * cell_pixels)."""
    cell_pixels: int
    audio: np.ndarray | None
    """The mono waveform the model heard (None without an audio track)."""
    audio_rate: int
    audio_times: np.ndarray
    """[A] start of each audio token, seconds from the clip's start."""
    audio_token_seconds: float
    stages: list[StageKeep] = field(default_factory=list)

    @property
    def label(self) -> str:
        budget = f"retain {self.retain:.2f}" if self.retain is not None else "default budget"
        return f"{self.method} ({budget})"


def _capture_language_model_call(adapter: ModelAdapter) -> tuple[dict[str, Any], Any]:
    """A pre-hook (registered before any attachment, so it sees the uncompressed call) storing the
    position ids the thinker computed."""
    seen: dict[str, Any] = {}

    def grab(module: nn.Module, args: tuple, kwargs: dict) -> None:
        seen.setdefault("position_ids", kwargs.get("position_ids"))

    return seen, adapter.language_model.register_forward_pre_hook(grab, with_kwargs=True)


def _cells(thinker: nn.Module, grid_thw: torch.Tensor) -> tuple[int, int, int, int]:
    """(grids, rows, cols, cell pixels) of the first video: merged cells of its processed frames."""
    vision = thinker.config.vision_config
    merge, patch = int(vision.spatial_merge_size), int(vision.patch_size)
    t, h, w = (int(x) for x in grid_thw[0].tolist())
    return t, h // merge, w // merge, merge * patch


def _resize_frames(frames: torch.Tensor, height: int, width: int) -> np.ndarray:
    """[T, 3, h, w] uint8 -> [T, height, width, 3] uint8 at the processed size (as the model saw them)."""
    resized = torch.nn.functional.interpolate(
        frames.float(), size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _stage(
    layer: int,
    present: torch.Tensor,
    layout: Layout,
    shape: tuple[int, int, int],
    frames_per_grid: int,
    grid_start: np.ndarray,
    audio_order: torch.Tensor,
    num_frames: int,
) -> StageKeep:
    """Keep masks of sample 0 from `present`, its [N] bool over the uncompressed sequence."""
    grids_t, rows, cols = shape
    grid_of = layout.video_grid.cpu()
    rank = layout.video_rank.cpu()
    flat = layout.video_flat.cpu()
    kept = present[flat % layout.seq_len]
    grids: list[GridKeep] = []
    for g in range(grids_t):
        mask = np.zeros(rows * cols, dtype=bool)
        mine = grid_of == g
        mask[rank[mine].numpy()] = kept[mine].numpy()
        first = g * frames_per_grid
        covered = tuple(i for i in range(first, first + frames_per_grid) if i < num_frames)
        grids.append(GridKeep(g, covered, float(grid_start[g]), mask.reshape(rows, cols)))
    audio_keep = present[audio_order].numpy().astype(bool)
    return StageKeep(layer=layer, grids=grids, audio_keep=audio_keep)


def keep_map(
    thinker: nn.Module,
    processor: Any,
    media: Media,
    config: CompressionConfig,
    protocol: Protocol,
    *,
    prompt: str = "What happens in this video, and what do you hear?",
) -> KeepMap:
    """Run one prefill of `media` under `config` and report what was kept where.

    `media` is decoded with `protocol` (`omnisift.inputs.load_video`). Only the first video of one
    sample is drawn. Inner-LLM methods that report the positions present at
    each stage (`handle.last_kept_positions`) get one stage each; otherwise the LLM input is the one stage.
    """
    adapter = find_adapter(thinker)
    encoded = encode(processor, media, prompt, protocol)
    inputs = {k: v.to(adapter.device) if torch.is_tensor(v) else v for k, v in encoded.items()}
    if "video_grid_thw" not in inputs:
        raise ValueError(
            f"{media.path}: the processor produced no video grid; `omnisift show` needs a video."
        )
    seen, hook = _capture_language_model_call(adapter)
    handle = None
    try:
        handle = attach(thinker, config)
        with torch.no_grad():
            thinker(**inputs)
        stages_positions = _stage_positions(handle, int(inputs["input_ids"].shape[1]))
    finally:
        if handle is not None:
            handle.remove()
        hook.remove()
    positions = seen.get("position_ids")
    if positions is None:
        raise RuntimeError("the thinker did not call its language model: nothing to draw.")
    input_ids = inputs["input_ids"].cpu()
    temporal = positions[-3].cpu()
    layout = build_layout(input_ids, temporal, None, adapter.token_ids)

    grids_t, rows, cols, cell = _cells(thinker, inputs["video_grid_thw"].cpu())
    if layout.num_grids != grids_t or int(layout.grid_size[0]) != rows * cols:
        raise RuntimeError(
            f"{media.path}: found {layout.num_grids} grids of {int(layout.grid_size[0])} tokens in the sequence, "
            f"the processor made {grids_t} of {rows}x{cols}; cannot place the kept patches."
        )
    per_second = float(adapter.position_ids_per_second)
    media_t = temporal[0][layout.is_video[0] | layout.is_audio[0]].double()
    origin = float(media_t.min())
    grid_start = ((layout.grid_t.double().cpu() - origin) / per_second).numpy()
    audio_positions = layout.audio_flat.cpu() % layout.seq_len
    audio_times = ((temporal[0][audio_positions].double() - origin) / per_second).numpy()

    frames_per_grid = int(thinker.config.vision_config.temporal_patch_size)
    stages = [
        _stage(
            layer,
            present,
            layout,
            (grids_t, rows, cols),
            frames_per_grid,
            grid_start,
            audio_positions,
            media.num_frames,
        )
        for layer, present in stages_positions
    ]
    return KeepMap(
        method=config.method_name,
        retain=config.retain,
        family=adapter.family,
        frames=_resize_frames(media.frames, rows * cell, cols * cell),
        cell_pixels=cell,
        audio=media.audio,
        audio_rate=int(media.audio_rate),
        audio_times=audio_times,
        audio_token_seconds=1.0 / float(adapter.audio_tokens_per_second),
        stages=stages,
    )


def _stage_positions(handle: Any, length: int) -> list[tuple[int, torch.Tensor]]:
    """[(first layer of each stage, [N] bool present)] for sample 0 of the last prefill."""
    per_stage = getattr(handle, "last_kept_positions", None)
    if per_stage:
        stages = per_stage[0]
        out = []
        for layer in sorted(stages):
            present = torch.zeros(length, dtype=torch.bool)
            present[stages[layer].cpu().long()] = True
            out.append((int(layer), present))
        return out
    present = torch.zeros(length, dtype=torch.bool)
    source = handle.last_source_index
    if source is None:
        present[:] = True
    else:
        index = source[0].cpu()
        present[index[index >= 0]] = True
    return [(0, present)]
