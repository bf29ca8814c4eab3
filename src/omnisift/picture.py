"""`omnisift show`: one PNG of what each method keeps of a clip (matplotlib: the ``show`` extra).

Per method (and per stage of inner-LLM methods) a strip with one frame per grid: dropped merged patches
dimmed, kept ones outlined, kept/total above each frame, chunk spans above the strip; under it the
waveform with every audio token marked on the same time axis (kept in colour, dropped in grey). The
strip and the time axis share one horizontal scale, so a frame sits above the audio it was paired with.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._extras import require
from .keepmap import KeepMap, StageKeep

__all__ = ["Picture", "draw", "DIM", "KEPT_COLOR"]

logger = logging.getLogger(__name__)

DIM = 0.28
"""Brightness factor of a dropped patch."""
KEPT_COLOR = "#ffb000"
DROPPED_AUDIO = "#c8c8c8"
KEPT_AUDIO = "#1f77b4"

_LEFT_IN = 1.45  # room for row labels
_RIGHT_IN = 0.25
_THUMB_IN = 0.82  # frame width in inches
_GAP_IN = 0.05
_AUDIO_IN = 0.95
_AUDIO_STAGE_IN = 0.17  # more audio height per further stage: each band stays readable
_MIN_WIDTH_IN = 8.6  # title and legend fit on one line
_DPI = 100
PALETTE_COLORS = 128


@dataclass
class Picture:
    """The written file, the keep maps drawn and, for checking it, where each drawn frame sits in the PNG.

    `frame_boxes[(map index, stage index, grid index)]` = (x0, y0, x1, y1) in PNG pixels, y from the top.
    """

    path: Path
    width: int
    height: int
    maps: list[KeepMap]
    frame_boxes: dict[tuple[int, int, int], tuple[float, float, float, float]] = field(default_factory=dict)


def _plt():
    matplotlib = require("matplotlib", "show")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "show")


def dimmed(frame: np.ndarray, keep: np.ndarray, cell: int) -> np.ndarray:
    """The frame with every dropped cell darkened by `DIM`."""
    rows, cols = keep.shape
    factor = np.where(keep, 1.0, DIM).repeat(cell, 0).repeat(cell, 1)[: frame.shape[0], : frame.shape[1]]
    return (frame.astype(np.float32) * factor[..., None]).round().astype(np.uint8)


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True."""
    padded = np.concatenate([[False], flags.astype(bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b - a)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _stage_label(stage: StageKeep, many: bool) -> str:
    if not many:
        return ""
    return stage.label


def draw(maps: Sequence[KeepMap], out: str | Path, *, title: str) -> Picture:
    """Draw `maps` (one per method, same clip) into `out` (PNG)."""
    plt = _plt()
    from matplotlib.patches import Patch, Rectangle

    if not maps:
        raise ValueError("nothing to draw: no method ran.")
    first = maps[0]
    grids = len(first.stages[0].grids)
    frame_h, frame_w = first.frames.shape[1:3]
    thumb_h = _THUMB_IN * frame_h / frame_w
    grid_seconds = _grid_seconds(first)
    span = max(grids * grid_seconds, float(first.audio_times[-1]) + first.audio_token_seconds)
    span = span if first.audio_times.size else grids * grid_seconds
    strip_in = grids * (_THUMB_IN + _GAP_IN) - _GAP_IN
    inch_per_s = strip_in / (grids * grid_seconds)
    width_in = max(_MIN_WIDTH_IN, _LEFT_IN + max(strip_in, span * inch_per_s) + _RIGHT_IN)

    head_in, legend_in = 0.45, 0.35
    block = []
    for m in maps:
        stage_rows = len(m.stages) * (thumb_h + 0.42)
        block.append(0.38 + stage_rows + _audio_height(m) + 0.42)
    height_in = head_in + legend_in + sum(block) + 0.1
    fig = plt.figure(figsize=(width_in, height_in), dpi=_DPI)
    fig.text(0.5, 1 - 0.28 / height_in, title, ha="center", va="center", fontsize=12, weight="bold")
    picture = Picture(Path(out), int(round(width_in * _DPI)), int(round(height_in * _DPI)), list(maps))

    def axes(left_in: float, top_in: float, w_in: float, h_in: float):
        rect = (left_in / width_in, 1 - (top_in + h_in) / height_in, w_in / width_in, h_in / height_in)
        return fig.add_axes(rect), rect

    top = head_in + legend_in
    for mi, km in enumerate(maps):
        s0 = km.stages[0]
        summary = (
            f"{km.label}: video {s0.video_kept}/{s0.video_total} patches, "
            f"audio {s0.audio_kept}/{s0.audio_keep.size} tokens"
        )
        fig.text(_LEFT_IN / width_in, 1 - (top + 0.2) / height_in, summary, fontsize=10.5, weight="bold")
        top += 0.38
        many = len(km.stages) > 1
        for si, stage in enumerate(km.stages):
            top += 0.22  # kept counts above the frames
            if si == 0:
                _chunk_labels(fig, km, grids, grid_seconds, top, width_in, height_in)
            label = _stage_label(stage, many)
            fig.text(
                (_LEFT_IN - 0.1) / width_in,
                1 - (top + thumb_h / 2) / height_in,
                f"video\n{label}\n{stage.video_kept}/{stage.video_total}" if many else "video",
                ha="right",
                va="center",
                fontsize=9,
            )
            for g, grid in enumerate(stage.grids):
                left = _LEFT_IN + g * (_THUMB_IN + _GAP_IN)
                ax, rect = axes(left, top, _THUMB_IN, thumb_h)
                frame = km.frames[grid.frames[0]]
                ax.imshow(
                    dimmed(frame, grid.keep, km.cell_pixels),
                    extent=(0, frame_w, frame_h, 0),
                    interpolation="nearest",
                    aspect="auto",
                )
                for r, c in zip(*np.nonzero(grid.keep), strict=True):
                    inset = 0.6
                    ax.add_patch(
                        Rectangle(
                            (c * km.cell_pixels + inset, r * km.cell_pixels + inset),
                            km.cell_pixels - 2 * inset,
                            km.cell_pixels - 2 * inset,
                            fill=False,
                            edgecolor=KEPT_COLOR,
                            linewidth=1.1,
                        )
                    )
                ax.set_xlim(0, frame_w)
                ax.set_ylim(frame_h, 0)
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_title(f"{int(grid.keep.sum())}/{grid.keep.size}", fontsize=8, pad=2)
                x0, y0 = rect[0] * picture.width, (1 - rect[1] - rect[3]) * picture.height
                picture.frame_boxes[(mi, si, g)] = (
                    x0,
                    y0,
                    x0 + rect[2] * picture.width,
                    y0 + rect[3] * picture.height,
                )
            top += thumb_h + 0.2
        ax, _ = axes(_LEFT_IN, top, span * inch_per_s, _audio_height(km))
        _audio(ax, km, span, grid_seconds)
        top += _audio_height(km) + 0.42

    handles = [
        Patch(facecolor="none", edgecolor=KEPT_COLOR, linewidth=1.5, label="kept patch (outlined)"),
        Patch(facecolor="#444444", label="dropped patch (dimmed)"),
        Patch(facecolor=KEPT_AUDIO, label="kept audio token"),
        Patch(facecolor=DROPPED_AUDIO, label="dropped audio token"),
    ]
    fig.legend(
        handles=handles,
        loc="center",
        bbox_to_anchor=(0.5, 1 - (head_in + legend_in / 2) / height_in),
        ncol=4,
        fontsize=9,
        frameon=False,
    )
    picture.path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=_DPI, format="png")
    plt.close(fig)
    _save_small(buffer, picture.path)
    logger.info("wrote %s (%dx%d px)", picture.path, picture.width, picture.height)
    return picture


def _save_small(buffer: io.BytesIO, path: Path) -> None:
    """Write the PNG with a 128-colour palette: a third of the size, small enough to commit to docs."""
    image = require("PIL.Image", "show")
    buffer.seek(0)
    with image.open(buffer) as rendered:
        palette = rendered.convert("RGB").quantize(
            colors=PALETTE_COLORS, method=image.Quantize.MEDIANCUT, dither=image.Dither.NONE
        )
        palette.save(path, optimize=True)


def _grid_seconds(km: KeepMap) -> float:
    """Seconds one grid spans: the step between grid starts (1 s at 2 fps)."""
    starts = [g.start_s for g in km.stages[0].grids]
    return float(np.median(np.diff(starts))) if len(starts) > 1 else 1.0


def _chunk_labels(fig, km: KeepMap, grids: int, grid_seconds: float, top: float, width_in, height_in) -> None:
    """'0-2 s' above each pair of grids that forms a chunk (two grids per 2-second chunk)."""
    per_chunk = max(1, int(round(2.0 / grid_seconds)))
    for start in range(0, grids, per_chunk):
        stop = min(start + per_chunk, grids)
        left = _LEFT_IN + start * (_THUMB_IN + _GAP_IN)
        right = _LEFT_IN + stop * (_THUMB_IN + _GAP_IN) - _GAP_IN
        t0 = km.stages[0].grids[start].start_s
        t1 = t0 + (stop - start) * grid_seconds
        y = 1 - (top - 0.2) / height_in
        fig.text((left + right) / 2 / width_in, y, f"{t0:g}-{t1:g} s", ha="center", va="bottom", fontsize=8)
        fig.add_artist(
            _line((left + 0.03) / width_in, (right - 0.03) / width_in, y - 0.02 / height_in, fig.transFigure)
        )


def _line(x0: float, x1: float, y: float, transform):
    from matplotlib.lines import Line2D

    return Line2D([x0, x1], [y, y], transform=transform, color="#888888", linewidth=0.8)


def _audio_height(km: KeepMap) -> float:
    return _AUDIO_IN + _AUDIO_STAGE_IN * (len(km.stages) - 1)


def _audio(ax, km: KeepMap, span: float, grid_seconds: float) -> None:
    """Waveform envelope on top, one band of token marks per stage below it, chunk boundaries dashed."""
    stages = len(km.stages)
    band = 0.6
    if km.audio is not None and km.audio.size:
        bins = min(km.audio.size, 2000)
        usable = km.audio[: km.audio.size // bins * bins].reshape(bins, -1)
        times = (np.arange(bins) + 0.5) * usable.shape[1] / km.audio_rate
        peak = float(np.abs(usable).max()) or 1.0
        ax.fill_between(times, usable.min(1) / peak, usable.max(1) / peak, color="#777777", linewidth=0)
    for si, stage in enumerate(km.stages):
        y = -1.15 - si * (band + 0.1) - band
        for flags, color in ((~stage.audio_keep, DROPPED_AUDIO), (stage.audio_keep, KEPT_AUDIO)):
            spans = [
                (
                    float(km.audio_times[a]),
                    float(km.audio_times[a + n - 1]) - float(km.audio_times[a]) + km.audio_token_seconds,
                )
                for a, n in _runs(flags)
            ]
            ax.broken_barh(spans, (y, band), facecolors=color, linewidth=0)
        if stages > 1:
            ax.text(
                -0.01,
                y + band / 2,
                f"{_stage_label(stage, True)}: {stage.audio_kept}",
                transform=ax.get_yaxis_transform(),
                ha="right",
                va="center",
                fontsize=7,
            )
    chunk = 2.0
    for x in np.arange(chunk, span, chunk):
        ax.axvline(x, color="#aaaaaa", linestyle="--", linewidth=0.7)
    ax.set_xlim(0, span)
    ax.set_ylim(-1.15 - stages * (band + 0.1) - 0.05, 1.05)
    ax.set_yticks([])
    ax.set_xlabel("seconds", fontsize=8, labelpad=1)
    ax.tick_params(axis="x", labelsize=8)
    # "audio" beside the waveform (the stage labels sit beside the bands below it)
    ax.text(-0.01, 0.0, "audio", transform=ax.get_yaxis_transform(), ha="right", va="center", fontsize=9)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
