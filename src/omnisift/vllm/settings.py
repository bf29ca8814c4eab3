"""What the vLLM thinker reads: the engine's compression settings and a request's budget override.

Settings travel inside the model config (`hf_overrides={"omnisift": CompressionConfig.to_dict()}`),
so `vllm serve` and `LLM(...)` carry them the same way; a request overrides the budget through its
multimodal processor kwargs (`omnisift_retain`, `omnisift_video_drop`, `omnisift_audio_drop`).
No vLLM import here.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..budget import BudgetSettings, SettingError
from ..config import CompressionConfig
from ..inner.method import InnerLLMMethod
from ..layout import TokenIds
from ..methods import SelectionMethod, method_settings
from ..methods.omnisift import OmniSIFT
from ..models.qwen2_5_omni.adapter import Qwen25OmniAdapter
from ..models.qwen3_omni_moe.adapter import Qwen3OmniMoeAdapter
from ..selector import CHECKPOINT_PREFIX, source_selector

__all__ = [
    "ServingSettings",
    "REQUEST_KEYS",
    "request_budget",
    "validate_request_kwargs",
    "check_request_values",
    "budget_row",
    "budget_from_row",
    "check_layout_only",
    "CONFIG_KEY",
]

CONFIG_KEY = "omnisift"
"""Attribute of the model config (set through hf_overrides) holding `CompressionConfig.to_dict()`."""
REQUEST_KEYS = ("omnisift_retain", "omnisift_video_drop", "omnisift_audio_drop")
_BARE_NAMES = tuple(key.removeprefix("omnisift_") for key in REQUEST_KEYS)
"""`retain` etc. without the prefix: vLLM would pass them to the HF processor, which ignores them."""
LAYOUT_ONLY_USES = ("training-free", "trained selector")
"""`SelectionMethod.uses` of methods whose kept counts follow from the layout alone (vLLM sizes
placeholders before encoding). Others (e.g. omnizip: encoder attention, adaptive per-group budgets)
are refused."""


_LAYOUT_ONLY_NAMES = "omnisift, its ablations, random, evs, vidcom2 or dycoke"


def check_layout_only(method: SelectionMethod) -> None:
    """Raise a ValueError for a method vLLM cannot host."""
    if isinstance(method, InnerLLMMethod):
        raise ValueError(
            f"method {method.name!r} drops tokens inside the language model (an inner-LLM method), which runs "
            "in transformers only (omnisift.attach): vLLM sizes each request's placeholders, KV cache and "
            "positions before the language model runs, so it cannot shrink a sequence between decoder layers. "
            f"In vLLM use a layout-only method ({_LAYOUT_ONLY_NAMES}), which drops before the language model."
        )
    if method.uses not in LAYOUT_ONLY_USES:
        raise ValueError(
            f"method {method.name!r} uses {method.uses}, which vLLM does not expose to models (and its kept "
            "counts depend on content, but vLLM sizes placeholders before encoding). In vLLM use a layout-only "
            f"method: {_LAYOUT_ONLY_NAMES}."
        )


def budget_row(budget: BudgetSettings) -> list[float]:
    """A request's budget as the tensor row the multimodal processor carries (-1: no retain)."""
    return [budget.video_drop, budget.audio_drop, -1.0 if budget.retain is None else budget.retain]


def budget_from_row(row: list[float]) -> BudgetSettings:
    """The budget `budget_row` wrote."""
    return BudgetSettings(float(row[0]), float(row[1]), None if row[2] < 0 else float(row[2]))


@dataclass
class ServingSettings:
    """The engine's compression settings (`method` None: positions fixed, nothing dropped)."""

    method: dict[str, Any] | None
    default: BudgetSettings
    token_ids: TokenIds
    positions_per_second: float
    selector_prefix: str = CHECKPOINT_PREFIX

    @classmethod
    def from_hf_config(cls, hf_config: Any) -> ServingSettings:
        thinker = getattr(hf_config, "thinker_config", hf_config)
        raw = getattr(hf_config, CONFIG_KEY, None)
        if raw is None:
            default, method = BudgetSettings(0.0, 0.0, None), None
        else:
            if not isinstance(raw, Mapping) or "method" not in raw:
                raise ValueError(
                    f"model config `{CONFIG_KEY}` must be CompressionConfig.to_dict() (use omnisift.vllm.engine_args), "
                    f"got {raw!r}."
                )
            config = CompressionConfig.from_dict(raw)
            default, method = config.budget_settings, method_settings(config.method)
        qwen3 = getattr(hf_config, "model_type", None) == "qwen3_omni_moe"
        adapter = Qwen3OmniMoeAdapter if qwen3 else Qwen25OmniAdapter
        return cls(
            method=method,
            default=default,
            token_ids=adapter.token_ids_from_config(thinker),
            positions_per_second=float(
                getattr(thinker, "position_id_per_seconds", adapter.position_ids_per_second)
            ),
        )

    def build_method(self) -> SelectionMethod | None:
        if self.method is None:
            return None
        method = CompressionConfig.from_dict({"method": self.method}).method
        check_layout_only(method)
        return method

    def prepare_method(
        self, method: SelectionMethod | None, selector_state: dict[str, torch.Tensor], hidden_size: int
    ) -> SelectionMethod | None:
        """Give a selector method its weights: its selector file, else the checkpoint's compressor keys."""
        if not isinstance(method, OmniSIFT):
            return method
        if method.selector is not None:
            method.prepare_from_path(hidden_size)
            return method
        if not selector_state:
            if self.default.audio_drop > 0 or self.default.retain is not None:
                raise ValueError(
                    f"method {method.name!r} drops audio with a trained selector, but the served checkpoint has no "
                    f"{self.selector_prefix}* keys and no selector file was given: pass "
                    "CompressionConfig(selector=...) to omnisift.vllm.engine_args, or audio_drop=0 to prune video only."
                )
            return method
        return dataclasses.replace(method, selector=source_selector(selector_state, hidden_size=hidden_size))


def validate_request_kwargs(kwargs: Mapping[str, object]) -> None:
    """Refuse request keys meant for omnisift that it does not read (vLLM would drop them silently).

    Refused: any `omnisift_*` key other than REQUEST_KEYS (the method is the engine's, not the request's),
    the bare names (`retain`), and near misspellings of either (`retian`, `omnisift_retian`).
    """
    known = set(REQUEST_KEYS)
    for key in kwargs:
        if key in known:
            continue
        close = difflib.get_close_matches(key, [*REQUEST_KEYS, *_BARE_NAMES], n=1, cutoff=0.8)
        if key.startswith("omnisift_") or key in _BARE_NAMES or close:
            hint = close[0] if close and close[0] in known else f"omnisift_{close[0]}" if close else None
            suggestion = f" (did you mean {hint!r}?)" if hint else ""
            raise ValueError(
                f"request key {key!r} is not read by omnisift{suggestion}: a request may set only "
                f"{', '.join(REQUEST_KEYS)} (use omnisift.vllm.request_kwargs); the method and selector are the "
                f"engine's (omnisift.vllm.engine_args).{_method_note(key, kwargs[key])}"
            )


def _method_note(key: str, value: object) -> str:
    """For a request naming a method: why that method could not be served either (inner-LLM, omnizip)."""
    if key != "omnisift_method" or not isinstance(value, str):
        return ""
    try:
        check_layout_only(CompressionConfig(method=value).method)
    except (ValueError, TypeError) as error:
        return f" Nor could the engine serve it: {error}"
    return ""


def _number(kwargs: Mapping[str, object], key: str, default: float | None) -> object:
    """The request's value, text read as a number where it parses; BudgetSettings checks the rest."""
    value = kwargs.get(key, default)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _checked_budget(kwargs: Mapping[str, object], default: BudgetSettings) -> BudgetSettings:
    """`default` with the request's `omnisift_*` values, checked by the config's own rule."""
    video = _number(kwargs, "omnisift_video_drop", default.video_drop)
    audio = _number(kwargs, "omnisift_audio_drop", default.audio_drop)
    retain = _number(kwargs, "omnisift_retain", default.retain)
    try:
        return BudgetSettings(video, audio, retain)  # type: ignore[arg-type]
    except SettingError as error:
        raise ValueError(f"request key 'omnisift_{error.setting}': {error}") from None


def check_request_values(kwargs: Mapping[str, object]) -> None:
    """Refuse a request's budget values the engine would refuse, when the request is built (the engine's
    own drops are not known there: each given value is checked on its own)."""
    _checked_budget(kwargs, BudgetSettings(0.0, 0.0, None))


def request_budget(settings: ServingSettings, kwargs: Mapping[str, object]) -> BudgetSettings:
    """The engine's budget with a request's `omnisift_*` overrides applied (checked as the config is)."""
    validate_request_kwargs(kwargs)
    requested = _checked_budget(kwargs, settings.default)
    video, audio, retain = requested.video_drop, requested.audio_drop, requested.retain
    if settings.method is None and (video or audio or retain is not None):
        raise ValueError(
            "this engine has no compression method: build it with omnisift.vllm.engine_args(CompressionConfig(...)) "
            "to use omnisift_* request settings."
        )
    return requested
