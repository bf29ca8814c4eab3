"""The contract every model family implements: where to hook, and the model's facts as data.

Generic code (layout, methods, attach, loading, evaluation, training, engines) reads these facts from
the adapter and never names a family's class, token id or rate. A family lives in `models/<family>/`:
its adapter (a `ModelAdapter` subclass registered in `models/__init__.py`), its synthetic layouts and
its tiny test fixtures.
"""

from __future__ import annotations

import json
from abc import ABC
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..layout import TokenIds

__all__ = ["ModelAdapter", "AudioAttention", "VisionAttention", "TinyModel", "read_model_type"]


@dataclass(frozen=True)
class AudioAttention:
    """Where an audio encoder's last self-attention is, and how its frames map to audio tokens.

    Methods that score audio by the encoder's attention (OmniZip) hook `attention` and use
    `frames_per_input(feature_lens)` to split its frames per audio input and `pool(frame_scores)` to
    turn one input's per-frame scores into per-token scores.
    """

    encoder: nn.Module
    attention: nn.Module
    frames_per_input: Callable[[torch.Tensor], list[int]]
    pool: Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class VisionAttention:
    """Where a vision encoder's last self-attention is, and how its patch order maps to merged tokens.

    SEATS' Stage I hooks `attention`; `project(attention, hidden)` gives its [patches, heads, d] queries
    and keys before the rotary tables, `window_index(grid_thw)` the merged-token index of each merged
    unit in the encoder's (possibly window-reordered) order, and `merge_unit` the patches per merged token.
    """

    encoder: nn.Module
    attention: nn.Module
    project: Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    window_index: Callable[[torch.Tensor], torch.Tensor]
    merge_unit: int


@dataclass
class TinyModel:
    """A random-weight fixture model with its offline processor (demos, tests, `--model tiny`)."""

    model: nn.Module
    processor: Any
    min_pixels: int | None = None
    max_pixels: int | None = None


def read_model_type(path: str | Path) -> str | None:
    """`model_type` of a checkpoint folder's config.json; FileNotFoundError naming the folder if absent."""
    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{path} has no config.json; pass a checkpoint folder or a tiny model name")
    try:
        return json.loads(config_file.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise ValueError(
            f"{config_file} is not a valid JSON config ({exc}); re-download the checkpoint"
        ) from exc


class ModelAdapter(ABC):
    """One model family: hook points, token ids, layout facts and loading facts.

    Instances wrap one model (the full model or its thinker); class attributes are the family's facts.
    """

    family: ClassVar[str] = ""
    full_class: ClassVar[str] = ""
    """transformers class name of the full model (thinker + talker)."""
    thinker_class: ClassVar[str] = ""
    """transformers class name of the thinker (the text-generating model)."""
    model_types: ClassVar[dict[str, str]] = {}
    """config.json `model_type` -> transformers class name that loads such a folder."""
    processor_class: ClassVar[str] = ""
    real_token_ids: ClassVar[TokenIds]
    """The released checkpoints' special token ids."""
    tiny_names: ClassVar[tuple[str, ...]] = ()
    """Names that load this family's random-weight fixture (`load_model("tiny")`)."""
    tiny_pixel_bounds: ClassVar[tuple[int, int]] = (0, 0)
    """Frame pixel bounds (min, max) the fixtures' processor expects."""
    frame_factor: ClassVar[int] = 28
    """What the family's published reader resizes frame sides to multiples of (patch x spatial merge of the
    reader's `image_patch_size`); `omnisift.inputs` passes it to `omnisift.media.load`."""
    audio_window_s: ClassVar[float | None] = None
    """Seconds of audio the family's processor keeps (None: it cuts nothing)."""
    audio_tokens_per_second: ClassVar[float] = 0.0
    position_ids_per_second: ClassVar[float] = 0.0
    filtered_inputs: ClassVar[tuple[str, ...]] = ()
    """Extra language-model keyword inputs that must be filtered with the keep mask (none for most)."""
    loads_without_talker: ClassVar[dict[str, Any]] = {}
    """from_pretrained kwargs that skip building the speech output (text answers only)."""
    inner_llm_layers: ClassVar[dict[int, tuple[tuple[int, ...], int]]] = {}
    """LLM depth -> SEATS' (drop layers, late layer) for the released checkpoints of that depth (0-based
    first layer of each reduced set; first layer without audio/video)."""

    def __init__(self, model: nn.Module) -> None:
        name = type(model).__name__
        if name not in (self.full_class, self.thinker_class):
            raise ValueError(f"{type(self).__name__} cannot wrap {name}")
        self.model = model
        self.thinker: nn.Module = model.thinker if name == self.full_class else model
        self.talker: nn.Module | None = getattr(model, "talker", None) if name == self.full_class else None

    # -- matching and loading -------------------------------------------------------------------------

    @classmethod
    def supported_classes(cls) -> tuple[str, ...]:
        return (cls.full_class, cls.thinker_class)

    @classmethod
    def matches(cls, model: nn.Module) -> bool:
        return type(model).__name__ in cls.supported_classes()

    @classmethod
    def stock_class_for(cls, path: str | Path) -> type:
        """The stock transformers class that loads the checkpoint folder `path`."""
        import transformers

        model_type = read_model_type(path)
        if model_type not in cls.model_types:
            raise ValueError(
                f"{path}: model_type {model_type!r} is not a {cls.family} checkpoint "
                f"(supported: {sorted(cls.model_types)})."
            )
        return getattr(transformers, cls.model_types[model_type])

    @classmethod
    def load_processor(cls, source: str | Path) -> Any:
        import transformers

        try:
            return getattr(transformers, cls.processor_class).from_pretrained(str(source))
        except (OSError, ValueError) as exc:
            raise FileNotFoundError(
                f"no {cls.family} processor files in {source} ({exc}); pass a folder that has them (e.g. a "
                f"local copy of the base {cls.family} checkpoint)"
            ) from exc

    @classmethod
    def build_tiny(cls, name: str, *, seed: int = 0, attn_implementation: str = "sdpa") -> TinyModel:
        """The random-weight fixture called `name` (one of `tiny_names`) and its processor, from the
        family's `fixtures` module (`tiny_thinker(seed, attn_implementation)`, `tiny_processor()`)."""
        import importlib

        fixtures = importlib.import_module(cls.__module__.rsplit(".", 1)[0] + ".fixtures")
        low, high = cls.tiny_pixel_bounds
        return TinyModel(
            model=fixtures.tiny_thinker(seed=seed, attn_implementation=attn_implementation),
            processor=fixtures.tiny_processor(),
            min_pixels=low,
            max_pixels=high,
        )

    # -- hook points --------------------------------------------------------------------------------

    @property
    def thinker_model(self) -> nn.Module:
        """The module whose forward receives `input_ids` (a pre-hook captures them there)."""
        return self.thinker.model

    @property
    def language_model(self) -> nn.Module:
        """The module receiving the final merged inputs (`inputs_embeds`, `position_ids`, mask, cache)."""
        return self.thinker.model.language_model

    # -- facts read from the model --------------------------------------------------------------------

    @property
    def hidden_size(self) -> int:
        return int(self.thinker.config.text_config.hidden_size)

    @property
    def token_ids(self) -> TokenIds:
        return self.token_ids_from_config(self.thinker.config)

    @classmethod
    def token_ids_from_config(cls, config: Any) -> TokenIds:
        """The special token ids a thinker config declares, with the family's real values (`real_token_ids`)
        where it declares none (some are tokenizer ids, not config fields)."""
        real = cls.real_token_ids
        return TokenIds(
            audio=getattr(config, "audio_token_id", real.audio),
            audio_bos=getattr(config, "audio_start_token_id", real.audio_bos),
            audio_eos=getattr(config, "audio_end_token_id", real.audio_eos),
            vision_bos=getattr(config, "vision_start_token_id", real.vision_bos),
            vision_eos=getattr(config, "vision_end_token_id", real.vision_eos),
            image=getattr(config, "image_token_id", real.image),
            video=getattr(config, "video_token_id", real.video),
        )

    @property
    def device(self) -> torch.device:
        return next(self.thinker.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.language_model.embed_tokens.weight.dtype

    def set_rope_deltas(self, deltas: torch.Tensor) -> None:
        """Record `max kept position + 1 - kept length` per sample, for decodes with `position_ids=None`."""
        self.thinker_model.rope_deltas = deltas

    def audio_attention(self) -> AudioAttention:
        """The audio encoder's last self-attention; families without a usable one raise NotImplementedError."""
        raise NotImplementedError(
            f"{self.family}: the audio encoder's attention is not exposed for saliency-based methods"
        )

    def vision_attention(self) -> VisionAttention:
        """The vision encoder's last self-attention; families without a usable one raise NotImplementedError."""
        raise NotImplementedError(f"{self.family}: the vision encoder's attention is not exposed")

    def wants_router_aux_loss(self, thinker: nn.Module, kwargs: dict[str, Any]) -> bool:
        """Whether this thinker call returns a mixture-of-experts load-balancing loss (never, for dense LLMs)."""
        return False

    def router_aux_loss(
        self, router_logits: tuple[torch.Tensor, ...], attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        """The load-balancing loss of `router_logits` (one [rows, experts] tensor per layer) over the rows
        `attention_mask` marks, as the stock thinker computes it."""
        raise NotImplementedError(f"{self.family} has no mixture-of-experts router")

    def filter_inputs(self, kwargs: dict[str, Any], keep: torch.Tensor, source_index: torch.Tensor) -> None:
        """Filter `filtered_inputs` in the language model's kwargs with the keep mask (in place).

        `keep` is the [B, N] keep mask, `source_index` the [B, K] original index of each compact slot (-1
        on padding). Families without extra inputs have nothing to do.
        """
        return None
