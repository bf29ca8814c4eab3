"""Attach compression to a stock transformers model with hooks: no fork, `remove()` restores it exactly.

At prefill, a kwargs pre-hook on the language model receives the merged `inputs_embeds` and the
M-RoPE `position_ids`; it runs the selection and passes on the compact batch (all position rows,
including the text row generate carries, and the compressed attention mask). Generate keeps its own
bookkeeping in uncompressed columns: its mask has `P + new` columns while the cache holds
`P - dropped` tokens. Each decode step rebuilds "compact mask + uncompressed tail" from that mask and,
when generate trimmed its cache after rejected drafts (prompt-lookup or assisted decoding), trims the
compact cache to the same point. `rope_deltas` is set from the kept positions so a manual decode
(`position_ids=None`) is right.

Per-call state (the captured `input_ids`, whether media features came with the call) is thread-local,
so one attached model serves several threads. Calls that compress nothing (text only, placeholder ids
without media features, media without a video for a pre-LLM method, a zero budget) pass through untouched,
whatever the cache, mask or labels. Refused, with an error naming the cause, only where compressing would
make the result wrong: `_refusal`, `_layout_refusal`, `_talker_refusal` (README "Refusals"). With
`output_router_logits` (MoE) the thinker's load-balancing loss is recomputed on the rows the LLM saw.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .api import select_with
from .budget import BudgetSettings
from .compress import SampleStats, compress
from .config import CompressionConfig
from .inner import InnerLLMMethod, InnerRuntime, PrefillStart, input_accounting, source_positions
from .methods import SelectionMethod
from .models import ModelAdapter, find_adapter

__all__ = ["CompressionHandle", "CallStats", "attach", "check_transformers_for_hooks", "load_pretrained"]

logger = logging.getLogger(__name__)

_ACTIVE: weakref.WeakKeyDictionary[nn.Module, weakref.ReferenceType[CompressionHandle]] = (
    weakref.WeakKeyDictionary()
)
"""Thinker -> its live handle. Values are weak: the registry never keeps a model alive."""


@dataclass(frozen=True)
class CallStats:
    """What one compressed forward did."""

    samples: list[SampleStats]
    select_seconds: float
    compressed: bool


_MEDIA_FEATURES = ("input_features", "pixel_values", "pixel_values_videos")
"""Thinker inputs that carry media features: only a call with one of them (or with encoder outputs, see
`_has_features`) has anything to compress."""


def _encoded(kwargs: dict, kind: str | None = None) -> bool:
    """Whether `mm_encoder_outputs` holds encoded media (of `kind`, or of any kind). generate passes an empty
    dict on every prefill, text-only prompts included, so presence alone says nothing."""
    encoded = kwargs.get("mm_encoder_outputs")
    if not isinstance(encoded, dict):
        return encoded is not None
    return any(value is not None for name, value in encoded.items() if kind is None or name == kind)


def _has_features(kwargs: dict) -> bool:
    return any(kwargs.get(name) is not None for name in _MEDIA_FEATURES) or _encoded(kwargs)


def _has_video_features(kwargs: dict) -> bool:
    return kwargs.get("pixel_values_videos") is not None or _encoded(kwargs, "video")


@dataclass
class _Call:
    """What the outer hooks saw of the current call (one per thread)."""

    input_ids: torch.Tensor | None = None
    has_features: bool = False
    has_video_features: bool = False
    has_labels: bool = False
    audio_in_video: bool | None = None
    """The call's `use_audio_in_video` (None: not passed, the model's default False)."""
    router_loss: bool = False
    """The caller asked for router logits (MoE): the aux loss is computed here, on the rows the LLM saw."""
    router_mask: torch.Tensor | None = None
    """The 2D mask of the rows the LLM saw when compression changed them (else the caller's mask is used)."""


@dataclass
class _DecodeState:
    """What decode steps need after a compressed prefill.

    Generate counts columns as if nothing was dropped: after the prefill, uncompressed column
    `c + dropped` is compact column `c` for every column past the compact prefill (text only).
    """

    compact_mask: torch.Tensor
    dropped: int


@dataclass
class CompressionHandle:
    """A live attachment: stats of each call, `remove()`, and use as a context manager."""

    model: nn.Module
    config: CompressionConfig
    adapter: ModelAdapter
    method: SelectionMethod
    """This attachment's own method instance (prepared on the model; released by `remove()`)."""
    budget: BudgetSettings
    """The config's budget, checked once when the config was made."""
    history: deque[CallStats] = field(default_factory=lambda: deque(maxlen=1000))
    _hooks: list[Any] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)
    _decode: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    last_source_index: torch.Tensor | None = None
    """[B, K] position in the uncompressed sequence of each slot of the last compressed prefill (-1 on
    padding); None when the last prefill dropped nothing. Use it to compress labels for training. With
    several threads it is the last prefill of any of them. Inner-LLM methods: the slots of the last layer."""
    last_kept_positions: list[dict[int, torch.Tensor]] = field(default_factory=list)
    """Per sample of the last compressed prefill: each stage's first layer (0 = the LLM input) -> 1-D
    LongTensor of the positions in that sample's input_ids row (padding included) still present there."""
    _inner: InnerRuntime | None = None

    @property
    def selector(self) -> nn.Module | None:
        """The trained selector this attachment uses (selector-based methods), else None."""
        return getattr(self.method, "selector_module", None)

    @property
    def last_stats(self) -> list[SampleStats]:
        """Per-sample stats of the most recent prefill (empty before the first)."""
        return self.history[-1].samples if self.history else []

    @property
    def last_select_seconds(self) -> float:
        return self.history[-1].select_seconds if self.history else 0.0

    @property
    def zero_budget(self) -> bool:
        """True when nothing is ever dropped: every call then runs exactly like the stock model."""
        return self.budget.drops_nothing

    def remove(self) -> None:
        """Take every hook off; the model is the stock model again."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        if self._inner is not None:
            self._inner.remove()
        self.method.release()
        if _ACTIVE.get(self.adapter.thinker) is not None and _ACTIVE[self.adapter.thinker]() is self:
            del _ACTIVE[self.adapter.thinker]
        self._local = threading.local()

    def __deepcopy__(self, memo: dict) -> CompressionHandle:
        """`copy.deepcopy(model)` copies the hooks, hence this handle: the copy is attached to the copied
        model (registered, so attaching it again is refused), with its own per-thread state and lock."""
        copied = object.__new__(type(self))
        memo[id(self)] = copied
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, threading.local):
                value = threading.local()
            elif item.name == "_lock":
                value = threading.Lock()
            else:
                value = copy.deepcopy(value, memo)
            setattr(copied, item.name, value)
        if copied._hooks:
            _ACTIVE[copied.adapter.thinker] = weakref.ref(copied)
        return copied

    def __enter__(self) -> CompressionHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # hooks -----------------------------------------------------------------------------------------

    def _call(self) -> _Call:
        call = getattr(self._local, "call", None)
        if call is None:
            call = self._local.call = _Call()
        return call

    def _on_thinker(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        refusal = _talker_refusal(self.adapter)
        if refusal is not None:  # the talker was enabled after attach
            raise RuntimeError(refusal)
        call = self._local.call = _Call(
            has_features=_has_features(kwargs),
            has_video_features=_has_video_features(kwargs),
            has_labels=kwargs.get("labels") is not None,
            audio_in_video=kwargs.get("use_audio_in_video"),
        )
        if not (
            call.has_features and not self.zero_budget and self.adapter.wants_router_aux_loss(module, kwargs)
        ):
            return None
        if self._inner is not None:
            raise RuntimeError(
                "omnisift: output_router_logits=True with an inner-LLM method: its layers run on different token "
                "counts, so no one mask fits the load-balancing loss. Pass output_router_logits=False, or use a "
                "method that compresses before the LLM."
            )
        # The stock thinker would weigh the compressed rows' router logits with the full-length mask; it
        # skips its aux loss and `_on_thinker_output` computes it on the rows the LLM saw.
        call.router_loss = True
        kwargs["output_router_logits"] = False
        return args, kwargs

    def _on_thinker_output(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        call = getattr(self._local, "router_call", None)
        self._local.router_call = None
        if call is None:
            return None
        if not isinstance(output, dict):
            raise RuntimeError(
                "omnisift: output_router_logits=True with return_dict=False: the load-balancing loss is recomputed "
                "on the kept rows and needs the model's output object. Drop return_dict=False."
            )
        mask = call.router_mask if call.router_mask is not None else kwargs.get("attention_mask")
        aux = self.adapter.router_aux_loss(output.router_logits, mask)
        output["aux_loss"] = aux
        if output.get("loss") is not None:
            output["loss"] = output["loss"] + module.router_aux_loss_coef * aux.to(output["loss"].device)
        return output

    def _on_thinker_model(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        call = self._call()
        call.input_ids = kwargs.get("input_ids", args[0] if args else None)
        call.has_features = call.has_features or _has_features(kwargs)
        if kwargs.get("use_audio_in_video") is not None:
            call.audio_in_video = kwargs["use_audio_in_video"]

    def _on_language_model(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        call = self._call()
        self._local.call = None
        if call.router_loss:
            kwargs["output_router_logits"] = True
            self._local.router_call = call
            return self._on_media_call(module, call, kwargs) or ((), kwargs)
        return self._on_media_call(module, call, kwargs)

    def _on_media_call(self, module: nn.Module, call: _Call, kwargs: dict) -> tuple[tuple, dict] | None:
        if self._inner is not None:
            self._inner.cancel()  # inner-LLM drops run only for a prefill handed over below
        if self.zero_budget and not call.has_features:
            # nothing to compress and decode bookkeeping would be the identity: leave the call alone, without
            # reading the cache length (a tensor under torch.compile: fullgraph would fail on the branch)
            return None
        cache = kwargs.get("past_key_values")
        past = cache.get_seq_length() if cache is not None else 0
        if past > 0:
            return self._decode_step(cache, call, kwargs)
        return self._prefill(module, cache, call, kwargs)

    def _may_drop(self, call: _Call) -> bool:
        """Whether this media call has tokens the method could drop. Methods that compress before the LLM
        drop only inside videos (images and audio outside a video are never touched); inner-LLM methods
        may drop any audio or video token. Without input_ids, the features say."""
        token_ids = self.adapter.token_ids
        ids = call.input_ids
        if self._inner is not None:
            return (
                call.has_features
                if ids is None
                else bool(((ids == token_ids.video) | (ids == token_ids.audio)).any())
            )
        return call.has_video_features if ids is None else bool((ids == token_ids.video).any())

    def _decode_step(self, cache: Any, call: _Call, kwargs: dict) -> tuple[tuple, dict] | None:
        with self._lock:
            state = self._decode.get(cache)
        if call.has_features and (state is not None or (not self.zero_budget and self._may_drop(call))):
            raise RuntimeError(
                "omnisift: media features (pixel_values_videos, input_features, ...) arrived on a non-empty cache "
                "(continuing generation from a cache with new media, or chunked prefill). Compression runs once "
                "at prefill: start from an empty cache and do not set prefill_chunk_size."
            )
        if state is None:
            return None
        embeds = kwargs["inputs_embeds"]
        new = embeds.shape[1]
        compact = state.compact_mask
        if (
            compact.shape[0] != embeds.shape[0]
        ):  # e.g. beam search expanded after prefill: never seen, refuse loudly
            raise RuntimeError(
                "omnisift: the batch size changed between prefill and decode; this is not supported."
            )
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.ndim != 2:
            raise RuntimeError(
                "omnisift: a prepared 4D attention mask arrived after a compressed prefill (static or compiled "
                "cache, or a custom mask). Compression changes the sequence length; use the default dynamic cache "
                "and a 2D attention_mask."
            )
        held = cache.get_seq_length()
        past = self._uncompressed_past(kwargs, new)
        past = held if past is None else past - state.dropped  # what the compact cache must hold now
        if past < 0 or held < past:
            raise RuntimeError(
                f"omnisift: this decode step expects {past} tokens in the compressed cache but it holds {held} "
                f"({state.dropped} were dropped at prefill). Was the cache or the mask changed between steps?"
            )
        if held > past:  # generate trimmed its (uncompressed) count after rejected drafts: trim ours too
            cache.crop(past)
        head = min(past, compact.shape[1])
        if mask is None:
            tail = torch.ones(compact.shape[0], past - head + new, dtype=compact.dtype, device=embeds.device)
        else:
            tail = mask[:, head + state.dropped :]
        kwargs["attention_mask"] = torch.cat([compact[:, :head].to(tail.dtype), tail], dim=1)
        return (), kwargs

    @staticmethod
    def _uncompressed_past(kwargs: dict, new: int) -> int | None:
        """How many tokens generate believes are cached (uncompressed count), None on a manual decode.

        Read from its mask, or, when it sends none (no padding), from the text row of its positions."""
        mask = kwargs.get("attention_mask")
        if mask is not None:
            return mask.shape[1] - new
        positions = kwargs.get("position_ids")
        if positions is not None and positions.ndim == 3 and positions.shape[0] == 4:
            return int(positions[0, 0, 0])
        return None

    def _prefill(self, module: nn.Module, cache: Any, call: _Call, kwargs: dict) -> tuple[tuple, dict] | None:
        embeds = kwargs.get("inputs_embeds")
        if embeds is None or not call.has_features or not self._may_drop(call):
            return None  # text only, placeholder ids without media, or no token the method drops
        ids = call.input_ids
        if ids is None:
            if self.zero_budget:
                return None
            raise RuntimeError(
                "omnisift: media features arrived without input_ids, so audio/video tokens cannot be found. "
                "Pass input_ids (the processor's output) rather than inputs_embeds."
            )
        if ids.shape != embeds.shape[:2]:
            raise RuntimeError(
                f"omnisift: input_ids {tuple(ids.shape)} do not match embeddings {tuple(embeds.shape[:2])}."
            )
        refusal = self._refusal(cache, call, kwargs) or self._layout_refusal(call, ids)
        if refusal is not None:
            if self.zero_budget:
                return None  # nothing would be dropped: run exactly like the stock model
            raise RuntimeError(f"omnisift: {refusal}")
        positions, mask = kwargs["position_ids"], kwargs.get("attention_mask")
        start = time.perf_counter()
        result = select_with(
            self.method, self.budget, embeds, ids, positions[-3:], mask, self.adapter.token_ids
        )
        stats = result.stats()
        self.last_source_index = None
        inner = self._inner is not None and not self.zero_budget
        dropped = any(s.length_after < s.length_before for s in stats)
        if (dropped or inner) and call.has_labels:
            raise RuntimeError(
                "omnisift: forward with `labels` dropped tokens: the loss would compare compressed logits with "
                "uncompressed labels. Use omnisift.training (it compresses labels with last_source_index), or "
                "remove() first."
            )
        stats = input_accounting(stats, self.adapter)
        valid = mask.bool() if mask is not None else torch.ones_like(ids, dtype=torch.bool)
        every = torch.where(valid, torch.arange(ids.shape[1], device=ids.device), -1)
        self.last_kept_positions = [{0: row} for row in source_positions(every)]  # a call that drops nothing
        decode_state = None
        if dropped or result.inputs_embeds is not embeds or inner:
            out = compress(result.keep, result.inputs_embeds, positions, mask)
            self.last_source_index = out.source_index
            kwargs["inputs_embeds"] = out.inputs_embeds
            kwargs["position_ids"] = out.position_ids
            self.adapter.filter_inputs(kwargs, result.keep, out.source_index)
            mask_dtype = mask.dtype if mask is not None else torch.long
            kwargs["attention_mask"] = out.attention_mask.to(mask_dtype)
            call.router_mask = kwargs["attention_mask"]
            kept_positions = torch.where(out.attention_mask.bool(), out.position_ids[-3:].amax(0), -1)
            kept_length = out.attention_mask.sum(1)
            self.adapter.set_rope_deltas((kept_positions.amax(1) + 1 - kept_length).unsqueeze(1))
            if cache is None and _will_cache(module, kwargs):
                # The model would create this cache itself, after this hook: made here (as the model makes
                # it) so that a caller's own decode loop on the returned cache finds the compact mask.
                from transformers import DynamicCache  # here: importing it pulls tqdm into `import omnisift`

                cache = DynamicCache(config=module.config)
                kwargs["past_key_values"] = cache
            if cache is not None:
                decode_state = _DecodeState(
                    compact_mask=out.attention_mask.to(mask_dtype),
                    dropped=embeds.shape[1] - out.inputs_embeds.shape[1],
                )
                with self._lock:
                    self._decode[cache] = decode_state
            self.last_kept_positions = [{0: row} for row in source_positions(out.source_index)]
            if inner:
                self._inner.begin(
                    self._inner_start(kwargs, out, result, stats, decode_state, embeds.shape[1])
                )
        elapsed = time.perf_counter() - start
        self.history.append(CallStats(samples=stats, select_seconds=elapsed, compressed=dropped or inner))
        logger.debug(
            "omnisift: %s, %d samples, %.1f ms, retained %s",
            self.method.name,
            len(stats),
            elapsed * 1e3,
            [round(s.retained, 3) for s in stats],
        )
        return (), kwargs

    def _inner_start(
        self, kwargs: dict, out: Any, result: Any, stats: list, decode_state: _DecodeState | None, length: int
    ) -> PrefillStart:
        """Hand the compact prefill to the inner-LLM layer hooks; they publish the final state back here."""
        source = out.source_index
        rows = torch.arange(source.shape[0], device=source.device).unsqueeze(1)
        index = source.clamp(min=0)
        present = source >= 0
        mask_dtype = kwargs["attention_mask"].dtype

        def publish(
            mask: torch.Tensor, positions: torch.Tensor, final_source: torch.Tensor, kept: list
        ) -> None:
            if decode_state is not None:
                decode_state.compact_mask = mask.to(mask_dtype)
                decode_state.dropped = length - mask.shape[1]
            kept_at = torch.where(mask.bool(), positions.amax(0), -1)
            self.adapter.set_rope_deltas((kept_at.amax(1) + 1 - mask.sum(1)).unsqueeze(1))
            self.last_source_index = final_source
            self.last_kept_positions = kept

        deepstack = None
        if kwargs.get("visual_pos_masks") is not None and kwargs.get("deepstack_visual_embeds") is not None:
            kwargs["visual_pos_masks"] = kwargs["visual_pos_masks"].clone()  # the hooks change it in place
            kwargs["deepstack_visual_embeds"] = list(kwargs["deepstack_visual_embeds"])
            deepstack = (kwargs["visual_pos_masks"], kwargs["deepstack_visual_embeds"])
        return PrefillStart(
            source=source,
            is_video=result.layout.is_video[rows, index] & present,
            is_audio=result.layout.is_audio[rows, index] & present,
            positions=kwargs["position_ids"][-3:],
            mask=kwargs["attention_mask"],
            pair=self.method.retention(self.config.retain),
            samples=stats,
            publish=publish,
            deepstack=deepstack,
        )

    def _layout_refusal(self, call: _Call, ids: torch.Tensor) -> str | None:
        """Why the model's positions misread these tokens, or None: a video with its audio track interleaved
        (`<vision_bos><audio_bos>`, the processor's layout with use_audio_in_video=True) run without
        use_audio_in_video=True gets positions of separate audio and video, which the selection would read as
        one-token video grids and audio outside any chunk."""
        if call.audio_in_video:
            return None
        token_ids = self.adapter.token_ids
        interleaved = (ids[:, :-1] == token_ids.vision_bos) & (ids[:, 1:] == token_ids.audio_bos)
        if not bool(interleaved.any()):
            return None
        return (
            "input_ids hold a video with its audio track interleaved (<vision_bos><audio_bos> ...: the processor "
            f"built them with use_audio_in_video=True), but this call has use_audio_in_video={call.audio_in_video} "
            "(None is the model's default, False), so the model builds the positions of separate audio and video "
            "and the audio/video layout would be misread. Pass use_audio_in_video=True to forward/generate (the "
            "processor's output does not carry it), or encode the video without its audio."
        )

    @staticmethod
    def _refusal(cache: Any, call: _Call, kwargs: dict) -> str | None:
        """Why compressing this media prefill would give a wrong result, or None when it is safe."""
        mask = kwargs.get("attention_mask")
        if isinstance(mask, dict) or (mask is not None and mask.ndim != 2):
            return (
                "a prepared 4D attention mask arrived with media (static or compiled cache, or a custom mask); "
                "compression changes the sequence length. Pass a 2D attention_mask and use the default dynamic "
                "cache without torch.compile."
            )
        if cache is not None and getattr(cache, "is_compileable", False):
            return (
                "a static/compileable cache was given with media; its size is fixed before compression. Use the "
                "default DynamicCache (cache_implementation=None)."
            )
        positions = kwargs.get("position_ids")
        if positions is not None and positions.ndim == 2:
            return (
                "position_ids of one row per token (text positions) came with media; compression keeps each kept "
                "token's M-RoPE positions, which the model builds itself: drop position_ids and pass attention_mask."
            )
        if positions is None or positions.ndim != 3:
            return (
                "compressing media needs M-RoPE position ids, and the model builds none without attention_mask. "
                "Pass attention_mask (the processor returns it), and use_audio_in_video=True for videos with audio."
            )
        return None


def _talker_refusal(adapter: ModelAdapter) -> str | None:
    """Why compression cannot serve this full model (its speech output is loaded), or None.

    The full model's generate feeds the thinker's per-token hidden states and the uncompressed input ids to
    the talker; compression shortens the former, so speech would fail deep inside the talker."""
    model = adapter.model
    if model is adapter.thinker or getattr(model, "talker", None) is None:
        return None
    return (
        f"omnisift: {type(model).__name__}.talker (speech output) is loaded; compression shortens the thinker's "
        "hidden states the talker reads. Attach to model.thinker and generate text with "
        "model.thinker.generate(...), or drop the talker: model.disable_talker(), or load with "
        "enable_audio_output=False."
    )


def _will_cache(module: nn.Module, kwargs: dict) -> bool:
    """Whether the language model will create a cache for this call (it does when use_cache, which
    defaults to its config's, is on)."""
    use_cache = kwargs.get("use_cache")
    if use_cache is None:
        use_cache = getattr(module.config, "use_cache", False)
    return bool(use_cache) and not torch.jit.is_tracing()


HOOKS_TRANSFORMERS = ((5, 23), (5, 24))
"""The transformers releases the hooks are written for, [first, last): they rely on 5.23's language-model
call, generate's position and mask bookkeeping and the cache API. The rest of omnisift (layout, budget,
methods, selector, vLLM) runs on older releases too, e.g. vLLM 0.32's transformers <5.20."""


def check_transformers_for_hooks(version: str | None = None) -> None:
    """Raise a RuntimeError saying what to install when transformers is not a release the hooks support."""
    if version is None:
        import transformers

        version = transformers.__version__
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    (low, high) = HOOKS_TRANSFORMERS
    if not low <= numbers < high:
        wanted = f"transformers>={low[0]}.{low[1]},<{high[0]}.{high[1]}"
        raise RuntimeError(
            f"omnisift.attach hooks into transformers internals that it is written and tested for in "
            f"{wanted}, but transformers {version} is installed: pip install '{wanted}' (in an environment of its "
            "own if vLLM is installed: vLLM 0.32 needs transformers <5.20 and serves through omnisift.vllm)."
        )


def attach(model: nn.Module, config: CompressionConfig | None = None) -> CompressionHandle:
    """Compress the audio/video tokens of every prefill of `model` until `handle.remove()`.

    `model` is a supported model (a full model or thinker of a family in `omnisift.models.ADAPTERS`)
    or its `.thinker`. Returns the handle (also a context manager). Generate text with
    `model.thinker.generate(...)`.
    """
    check_transformers_for_hooks()
    config = config or CompressionConfig()
    config.check()
    adapter = find_adapter(model)
    refusal = _talker_refusal(adapter)
    if refusal is not None:
        raise RuntimeError(refusal)
    active = _ACTIVE.get(adapter.thinker)
    if active is not None and active() is not None:
        raise RuntimeError(
            "omnisift is already attached to this model: call handle.remove() before attaching again."
        )
    method = dataclasses.replace(config.method)  # a fresh instance: its hooks belong to this attachment
    method.prepare(adapter)
    handle = CompressionHandle(
        model=model, config=config, adapter=adapter, method=method, budget=config.budget_settings
    )
    if isinstance(method, InnerLLMMethod):
        handle._inner = InnerRuntime(adapter.language_model, method, adapter)
    handle._hooks.append(adapter.thinker.register_forward_pre_hook(handle._on_thinker, with_kwargs=True))
    handle._hooks.append(adapter.thinker.register_forward_hook(handle._on_thinker_output, with_kwargs=True))
    handle._hooks.append(
        adapter.thinker_model.register_forward_pre_hook(handle._on_thinker_model, with_kwargs=True)
    )
    handle._hooks.append(
        adapter.language_model.register_forward_pre_hook(handle._on_language_model, with_kwargs=True)
    )
    _ACTIVE[adapter.thinker] = weakref.ref(handle)
    logger.debug("omnisift attached to %s: %s", type(model).__name__, config.to_dict())
    return handle


def load_pretrained(
    path: str | Path, config: CompressionConfig | None = None, **from_pretrained_kwargs: Any
) -> tuple[nn.Module, CompressionHandle]:
    """Load a released OmniSIFT checkpoint: the stock model (fine-tuned weights) plus its selector.

    The folder's `thinker.compressor.*` keys hold the selector; they are set aside when the stock class
    loads and given to the method (omnisift or an ablation) from the same folder. A folder without
    selector keys is an error.
    """
    from .loading import load_stock_model
    from .selector import find_selector_keys

    path = Path(path)
    find_selector_keys(path)  # fail before loading gigabytes when the folder has no selector
    model = load_stock_model(path, **from_pretrained_kwargs)
    config = config or CompressionConfig(selector=path)
    if not hasattr(config.method, "selector"):
        raise ValueError(
            f"load_pretrained loads a selector, but method {config.method_name!r} takes none: load the model "
            "with omnisift.loading.load_stock_model and attach that method instead."
        )
    if config.method.selector is None:
        config = config.with_method(selector=path)
    return model, attach(model, config)
