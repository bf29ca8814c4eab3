"""VidCom2, Video Compression Commander (arXiv 2505.14454), video only, as described in docs/design.md#baselines.

Per video (the grids of one video, a grid standing for one of VidCom2's frames):

1. Keep the half of the channels (`D // 2`) with the lowest variance across the video's tokens, and
   L2-normalise every token over those channels.
2. Score each token by a multi-scale Gaussian similarity to the video's mean token (v) and to its grid's
   mean token (f): `sim(x, m) = mean over alpha of exp(-||x - m||^2 / (2 alpha^2))`, alphas 1/8 .. 2.
3. Frame uniqueness `u_t = -mean(v over the grid)`, `p = softmax(u / temperature)` over the video's grids,
   frame budget scale `s_t = min(1, R (1 + p_t - mean p))`.
4. A grid keeps `max(1, round(s_t * P))` tokens, those with the smallest `v + f` (least redundant).

Choices the paper leaves open, or that the budget rule of this project overrides:

- Kernel form: alpha is the Gaussian bandwidth, `exp(-d^2 / (2 alpha^2))`, averaged over the five scales;
  the means are the means of the normalised tokens (not re-normalised).
- Budget: R starts as 1 - video_drop; here R is solved per video (bisection on the continuous quotas
  `clamp(R (1 + p_t - mean p) P, 1, P)`) so that their sum equals the sum of OmniSIFT's per-grid counts,
  then rounded to integers by largest remainder (floors, then +1 for the largest fractional parts), so the
  video keeps exactly OmniSIFT's count and every grid keeps at least one token and at most all of them.
- Channel selection and means are per video; two videos in one prompt never share statistics.
- Audio: VidCom2 has no audio rule; `audio_drop` is applied by seeded uniform sampling within each group
  (see `shared.uniform_audio_keep`); at `audio_drop=0` audio is untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import torch

from ..budget import Budget
from ..layout import Layout
from .base import register
from .shared import VideoOnlyMethod, drop_highest, fit_counts, grid_video_index, per_video_targets

__all__ = ["VidCom2", "vidcom2_scores", "frame_weights"]


def _gaussian_similarity(
    dots: torch.Tensor, mean_sq: torch.Tensor, token_sq: torch.Tensor, alphas: tuple[float, ...]
) -> torch.Tensor:
    distance_sq = (token_sq + mean_sq - 2.0 * dots).clamp_min(0.0)
    return torch.stack([torch.exp(-distance_sq / (2.0 * a * a)) for a in alphas]).mean(0)


def vidcom2_scores(
    layout: Layout, grids: torch.Tensor, present: torch.Tensor, alphas: tuple[float, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """[G, P] token redundancy `v + f` and [G] per-grid mean of v, computed per video."""
    video_of_grid, num_videos = grid_video_index(layout)
    work = grids.float() if grids.dtype in (torch.float16, torch.bfloat16) else grids
    hidden = work.shape[-1]
    sizes = layout.grid_size.to(work.dtype)
    video_sizes = torch.zeros(num_videos, dtype=work.dtype, device=work.device).index_add(
        0, video_of_grid, sizes
    )
    # Channel variance across each video's tokens, from per-grid sums (padded slots are zero).
    sums = torch.zeros(num_videos, hidden, dtype=work.dtype, device=work.device).index_add(
        0, video_of_grid, work.sum(1)
    )
    squares = torch.zeros_like(sums).index_add(0, video_of_grid, work.square().sum(1))
    mean = sums / video_sizes.unsqueeze(1)
    variance = squares / video_sizes.unsqueeze(1) - mean * mean
    channels = torch.topk(variance, max(1, hidden // 2), dim=1, largest=False, sorted=False).indices
    picked = torch.gather(work, 2, channels[video_of_grid].unsqueeze(1).expand(-1, work.shape[1], -1))
    picked = picked / torch.linalg.vector_norm(picked, dim=-1, keepdim=True).clamp_min(1e-12)
    token_sq = present.to(picked.dtype)  # unit norm on real tokens, zero on padding
    frame_mean = picked.sum(1) / sizes.clamp_min(1).unsqueeze(1)
    video_mean = torch.zeros(
        num_videos, picked.shape[-1], dtype=picked.dtype, device=picked.device
    ).index_add(0, video_of_grid, picked.sum(1)) / video_sizes.unsqueeze(1)
    video_mean_g = video_mean[video_of_grid]
    dots_v = torch.bmm(picked, video_mean_g.unsqueeze(-1)).squeeze(-1)
    dots_f = torch.bmm(picked, frame_mean.unsqueeze(-1)).squeeze(-1)
    v = _gaussian_similarity(dots_v, (video_mean_g * video_mean_g).sum(-1, keepdim=True), token_sq, alphas)
    f = _gaussian_similarity(dots_f, (frame_mean * frame_mean).sum(-1, keepdim=True), token_sq, alphas)
    v = v.masked_fill(~present, 0.0)
    f = f.masked_fill(~present, 0.0)
    return v + f, v.sum(1) / sizes.clamp_min(1)


def frame_weights(layout: Layout, frame_v: torch.Tensor, temperature: float) -> torch.Tensor:
    """[G] `1 + p_t - mean p` with `p = softmax(-frame_v / temperature)` over each video's grids."""
    video_of_grid, num_videos = grid_video_index(layout)
    logits = (-frame_v / temperature).double()
    top = torch.full((num_videos,), float("-inf"), dtype=torch.float64, device=logits.device)
    top = top.scatter_reduce(0, video_of_grid, logits, reduce="amax")
    weights = torch.exp(logits - top[video_of_grid])
    norm = torch.zeros_like(top).index_add(0, video_of_grid, weights)
    p = weights / norm[video_of_grid]
    frames = torch.bincount(video_of_grid, minlength=num_videos).double()
    return 1.0 + p - (1.0 / frames)[video_of_grid]


@register
@dataclass
class VidCom2(VideoOnlyMethod):
    """Frame-unique budgets, then per-frame keep of the tokens least similar to video and frame means."""

    name = "vidcom2"
    paper = "VidCom2, Video Compression Commander, arXiv 2505.14454"
    modalities = "video"
    summary: ClassVar[str] = (
        "video: larger budgets for unique frames, keep tokens least similar to video and frame means"
    )

    alphas: tuple[float, ...] = field(default=(0.125, 0.25, 0.5, 1.0, 2.0))
    """Gaussian kernel bandwidths (multi-scale similarity)."""
    temperature: float = 0.01
    """Softmax temperature of the frame uniqueness."""

    def __post_init__(self) -> None:
        self.alphas = tuple(float(a) for a in self.alphas)
        if not self.alphas or any(not a > 0 for a in self.alphas):
            raise ValueError(f"alphas must be a non-empty list of positive bandwidths, got {self.alphas!r}.")
        if not isinstance(self.temperature, (int, float)) or not self.temperature > 0:
            raise ValueError(f"temperature must be a positive number, got {self.temperature!r}.")

    def video_keep(
        self, layout: Layout, grids: torch.Tensor, present: torch.Tensor, budget: Budget
    ) -> torch.Tensor:
        scores, frame_v = vidcom2_scores(layout, grids, present, self.alphas)
        weights = frame_weights(layout, frame_v, float(self.temperature))
        video_of_grid, num_videos, target = per_video_targets(layout, budget)
        sizes = layout.grid_size
        # Largest useful R: every grid full (weights >= 1 - 1/T > 0, so R = 1 / min weight suffices).
        high = float(1.0 / weights.min().clamp_min(1e-6)) + 1.0
        counts = fit_counts(
            lambda r: r[video_of_grid] * weights * sizes.double(),
            video_of_grid,
            target,
            0.0,
            high,
            True,
            torch.ones_like(sizes),
            sizes,
        )
        return drop_highest(scores, present, counts)
