"""The parity cases, shared by the transformers reference script and the vLLM tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omnisift import CompressionConfig
from omnisift.models.qwen2_5_omni import fixtures

NEW_TOKENS = 8
QUESTION = "Describe the clip."


@dataclass(frozen=True)
class Clip:
    seconds: float
    fps: float
    seed: int


@dataclass(frozen=True)
class Case:
    clips: tuple[Clip, ...]
    method: str | None = "omnisift"
    video_drop: float = 0.7
    audio_drop: float = 0.3
    retain: float | None = None
    question: str = QUESTION
    audio: bool = True
    """False: video without its audio track (STVP alone)."""
    image: bool = False
    """True: an image before the video in the same prompt (images are never dropped)."""
    params: dict = field(default_factory=dict)

    def config(self, selector: Path) -> CompressionConfig:
        if self.method is None:
            return CompressionConfig(method="omnisift", video_drop=0.0, audio_drop=0.0)
        return CompressionConfig(
            method=self.method,
            video_drop=self.video_drop,
            audio_drop=self.audio_drop,
            retain=self.retain,
            selector=str(selector) if self.method.startswith("omnisift") else None,
        )


CLIP = Clip(8, 2.0, 0)
CASES: dict[str, Case] = {
    "zero_drop": Case((CLIP,), method=None),
    "drops": Case((CLIP,)),
    "retain": Case((CLIP,), retain=0.25),
    "fps1": Case((Clip(8, 1.0, 1),)),
    "fps05": Case((Clip(12, 0.5, 2),)),
    "two_videos": Case((Clip(4, 2.0, 3), Clip(6, 2.0, 4))),
    "other_clip": Case((Clip(6, 2.0, 5),)),
    "second_question": Case((CLIP,), question="What is the sound?"),
    "evs": Case((CLIP,), method="evs"),
    "vidcom2": Case((CLIP,), method="vidcom2"),
    "dycoke": Case((CLIP,), method="dycoke"),
    "random": Case((CLIP,), method="random"),
    "omnisift-no-temporal": Case((CLIP,), method="omnisift-no-temporal"),
    "video_only": Case((CLIP,), audio_drop=0.0, audio=False),
    "image_and_video": Case((CLIP,), image=True),
}


def chat_text(num_videos: int = 1, question: str = QUESTION, image: bool = False) -> str:
    videos = "<|vision_bos|><|IMAGE|><|vision_eos|>" if image else ""
    videos += "".join("<|vision_bos|><|VIDEO|><|vision_eos|>" for _ in range(num_videos))
    return (
        f"<|im_start|>system\n{fixtures.DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{videos}{question}"
        "<|im_end|>\n<|im_start|>assistant\n"
    )


VIDEO_ID, AUDIO_ID = fixtures.VIDEO_ID, fixtures.AUDIO_ID


QWEN3_CLIP = Clip(6, 2.0, 0)
QWEN3_CASES: dict[str, Case] = {
    "zero_drop": Case((QWEN3_CLIP,), method=None),
    "drops": Case((QWEN3_CLIP,)),
    "retain": Case((QWEN3_CLIP,), retain=0.25),
    "fps1": Case((Clip(6, 1.0, 1),)),
    "fps05": Case((Clip(8, 0.5, 2),)),
    "two_videos": Case((Clip(4, 2.0, 3), Clip(4, 2.0, 4))),
    "other_clip": Case((Clip(4, 2.0, 5),)),
    "video_only": Case((QWEN3_CLIP,), audio_drop=0.0, audio=False),
    "evs": Case((QWEN3_CLIP,), method="evs"),
    "vidcom2": Case((QWEN3_CLIP,), method="vidcom2"),
    "dycoke": Case((QWEN3_CLIP,), method="dycoke", video_drop=0.6),
    "random": Case((QWEN3_CLIP,), method="random"),
    "omnisift-no-temporal": Case((QWEN3_CLIP,), method="omnisift-no-temporal"),
}
"""Qwen3-Omni cases: whole-number t steps only (2, 1 and 0.5 fps: 13, 26 and 52 ids per grid)."""
QWEN3_FRACTIONAL = Case((Clip(4, 1.5, 6),), method=None)
"""1.5 fps: 17.33 ids per grid, which vLLM cannot represent (refused)."""


def chat_text3(num_videos: int = 1, question: str = QUESTION) -> str:
    videos = "".join("<|vision_start|><|video_pad|><|vision_end|>" for _ in range(num_videos))
    return (
        f"<|im_start|>system\n{fixtures.DEFAULT_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n{videos}{question}"
        "<|im_end|>\n<|im_start|>assistant\n"
    )
