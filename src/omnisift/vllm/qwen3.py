"""vLLM's Qwen3-Omni-MoE thinker with OmniSIFT compression (imported by vLLM only, through the plugin).

The same design as the Qwen2.5-Omni thinker (`thinker.py`): each video owns its audio-visual block, its
placeholder is `<audio_start>`, one video-token slot per KEPT media token, `<audio_end>`, and the kept rows
carry their M-RoPE offsets. What differs is the family's layout (`blocks.build_block_qwen3`: tokens merged
one by one by t id, consecutive start/end ids, 13 ids per second, whole-number t steps only) and DeepStack:
a video row is wider than the text (main features, then one set per DeepStack layer); audio rows get zeros
there, and the keep mask filters both, so each kept video token keeps its own DeepStack features. With
every slot holding the video token id, vLLM's stock merge treats the block as one vision item and adds the
DeepStack features at its rows (zeros at the audio rows, as transformers adds none there).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from vllm.model_executor.models.qwen3_omni_moe_thinker import (
    Qwen3OmniMoeThinkerDummyInputsBuilder,
    Qwen3OmniMoeThinkerForConditionalGeneration,
    Qwen3OmniMoeThinkerMultiModalProcessor,
    Qwen3OmniMoeThinkerProcessingInfo,
)
from vllm.multimodal import MULTIMODAL_REGISTRY

from ..models.qwen3_omni_moe.adapter import audio_token_count
from .blocks import Block, build_block_qwen3
from .thinker import OmniSIFTProcessorMixin, OmniSIFTThinkerMixin

__all__ = ["OmniSIFTQwen3OmniMoeThinker", "OmniSIFTQwen3Processor", "qwen3_block"]


def qwen3_block(config: Any, grid_thw: Sequence[int], second_per_grid: float, audio_tokens: int) -> Block:
    """The Qwen3-Omni block of a video (refuses rates whose t ids are not whole numbers)."""
    vision = config.vision_config
    return build_block_qwen3(
        tuple(int(v) for v in grid_thw),
        float(second_per_grid),
        audio_tokens,
        spatial_merge_size=int(vision.spatial_merge_size),
        positions_per_second=float(config.position_id_per_seconds),
        temporal_patch_size=int(getattr(vision, "temporal_patch_size", 2)),
    )


def _qwen3_audio_tokens(config: Any, feature_length: int) -> int:
    n_window = int(getattr(config.audio_config, "n_window", 50))
    return int(audio_token_count(torch.tensor([int(feature_length)]), n_window)[0])


class OmniSIFTQwen3Processor(OmniSIFTProcessorMixin, Qwen3OmniMoeThinkerMultiModalProcessor):
    """Qwen3-Omni's processor with each video owning its audio and placeholders sized to the kept tokens."""

    block = staticmethod(qwen3_block)
    audio_tokens = staticmethod(_qwen3_audio_tokens)


@MULTIMODAL_REGISTRY.register_processor(
    OmniSIFTQwen3Processor,
    info=Qwen3OmniMoeThinkerProcessingInfo,
    dummy_inputs=Qwen3OmniMoeThinkerDummyInputsBuilder,
)
class OmniSIFTQwen3OmniMoeThinker(OmniSIFTThinkerMixin, Qwen3OmniMoeThinkerForConditionalGeneration):
    """Qwen3-Omni-MoE thinker whose media blocks are compressed by an omnisift method (or kept whole)."""

    block = staticmethod(qwen3_block)
    audio_tokens = staticmethod(_qwen3_audio_tokens)
    shared_bos = False
