"""The compression settings every engine shares (transformers hooks, vLLM, lmms-eval, evaluation, training).

Lives below the engines so that none of them imports another to get its settings. The budget defaults,
the check of every setting, the JSON form (`to_dict` / `from_dict`) and the command-line flags are here
and nowhere else: a bad value gets the same message from Python, `omnisift eval`/`train`, lmms-eval's
`--model_args` and the vLLM helpers.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from .budget import BudgetSettings, SettingError
from .methods import METHODS, SelectionMethod, method_settings, parse_method_params, setting_fields
from .methods.base import resolve_method


def _inside_llm(method: SelectionMethod) -> bool:
    from .inner.method import InnerLLMMethod  # here: the inner package imports the methods package

    return isinstance(method, InnerLLMMethod)


def _seats_pair(retain: float) -> tuple[float, float] | None:
    from .inner.schedule import seats_pair  # here: the inner package imports the methods package

    return seats_pair(retain)


__all__ = [
    "BUDGET_KINDS",
    "CompressionConfig",
    "DEFAULT_AUDIO_DROP",
    "DEFAULT_METHOD",
    "DEFAULT_RETAIN",
    "DEFAULT_VIDEO_DROP",
    "NO_COMPRESSION",
    "check_seed",
    "add_compression_arguments",
    "compression_from_args",
    "compression_from_settings",
]

DEFAULT_METHOD = "omnisift"
DEFAULT_VIDEO_DROP = 0.7
DEFAULT_AUDIO_DROP = 0.3
DEFAULT_RETAIN: float | None = None
BUDGET_KINDS: tuple[str | None, ...] = (None, "input", "layer-avg")
"""How `retain` can be read: the method's own way, at the LLM input, or averaged over the LLM's layers."""
"""The paper's operating point: drop 70 % of video and 30 % of audio tokens, no retain target."""

NO_COMPRESSION = ("none", "full")
"""Method names meaning "keep every token" (no `CompressionConfig` at all)."""


def check_seed(seed: object) -> None:
    """Raise the one message for a bad seed (None: unset)."""
    if seed is None:
        return
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise SettingError("seed", f"seed must be a whole number in [0, 2**63), got {seed!r}.")


@dataclass
class CompressionConfig:
    """What to compress and how much; every value is checked here, once, when the config is made.

    Args:
        method: a registered method name (`omnisift methods` lists them) or a method instance, e.g.
            `OmniZip(knn=3)`. After creation this is always the instance.
        video_drop, audio_drop: fractions of video / audio tokens dropped, in [0, 1).
        retain: target fraction of each sample's audio+video tokens kept, in (0, 1]; overrides video_drop
            (see `omnisift.budget`).
        selector: shortcut for the `selector` setting of selector-based methods (omnisift and its
            ablations): a module, a selector `.safetensors` file, or a checkpoint folder holding
            `thinker.compressor.*` keys (the released OmniSIFT-7B). Refused for methods without one.
        seed: shortcut for the `seed` setting of methods that draw at random (refused for the others).
        method_params: any other setting of the method by name, e.g. `{"knn": 3}` for omnizip.
        budget: how `retain` is read. None: the method's own way (pre-LLM methods: the fraction kept at
            the LLM input; inner-LLM methods: averaged over the LLM's layers). "layer-avg": `retain` is the
            fraction kept averaged over the LLM's layers for every method: a pre-LLM method keeps its tokens
            at every layer, so it keeps SEATS' layer-averaged (video, audio) pair for R in SEATS' table
            (0.35 / 0.25 / 0.15 / 0.10) at its input, and R of the audio+video tokens for any other R.
            "input": the input fraction (pre-LLM methods only). See docs/design.md, "Three budgets".

    The shortcuts are consumed into `method`; read settings from there (`config.method.selector`).
    """

    method: str | SelectionMethod = DEFAULT_METHOD
    video_drop: float = DEFAULT_VIDEO_DROP
    audio_drop: float = DEFAULT_AUDIO_DROP
    retain: float | None = DEFAULT_RETAIN
    selector: nn.Module | str | Path | None = None
    seed: int | None = None
    method_params: dict[str, Any] = field(default_factory=dict)
    budget: str | None = None

    def __post_init__(self) -> None:
        budget = BudgetSettings(self.video_drop, self.audio_drop, self.retain)
        self.video_drop, self.audio_drop, self.retain = budget.video_drop, budget.audio_drop, budget.retain
        if self.budget not in BUDGET_KINDS:
            raise ValueError(
                f"budget={self.budget!r} is not one of {BUDGET_KINDS}: None (the method's own meaning of retain), "
                "'input' (retain = fraction kept at the LLM input) or 'layer-avg' (retain = fraction kept averaged "
                "over the LLM's layers)."
            )
        if self.budget is not None and self.retain is None:
            raise ValueError(
                f"budget={self.budget!r} says how retain is read, but no retain is set: give retain (e.g. 0.25) "
                "or leave budget unset."
            )
        check_seed(self.seed)
        if isinstance(self.method, str) and self.method in NO_COMPRESSION:
            raise ValueError(
                f"method {self.method!r} keeps every token: use no CompressionConfig at all (None) instead."
            )
        self.method = resolve_method(
            self.method, params=dict(self.method_params), selector=self.selector, seed=self.seed
        )
        check_seed(getattr(self.method, "seed", None))
        self.selector, self.seed, self.method_params = None, None, {}
        if self.budget == "input" and _inside_llm(self.method):
            raise ValueError(
                f"{self.method.name} drops tokens inside the LLM, so its retain is averaged over the LLM's layers "
                "(SEATS' convention); budget='input' applies to pre-LLM methods only. Leave budget unset or use "
                "'layer-avg'."
            )

    @property
    def budget_settings(self) -> BudgetSettings:
        """The checked budget (drops and retain) the method runs at: for a pre-LLM method at
        budget="layer-avg" with R in SEATS' table, the drops that keep SEATS' (video, audio) pair."""
        if (
            self.budget == "layer-avg"
            and not _inside_llm(self.method)
            and self.retain is not None
            and self.retain < 1.0
        ):
            pair = _seats_pair(self.retain)
            if pair is not None:
                return BudgetSettings(1.0 - pair[0], 1.0 - pair[1], None)
        return BudgetSettings(self.video_drop, self.audio_drop, self.retain)

    def check(self) -> None:
        """Raise when the method cannot run at this budget (e.g. omnisift dropping audio without selector)."""
        settings = self.budget_settings
        self.method.check_budget(settings.video_drop, settings.audio_drop, settings.retain)

    @property
    def method_name(self) -> str:
        return self.method.name

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description: the method with all its settings and the budget (for run identity).

        `from_dict` reads it back, except a selector given as an in-memory module (a file path is kept).
        """
        return {
            "method": method_settings(self.method),
            "video_drop": self.video_drop,
            "audio_drop": self.audio_drop,
            "retain": self.retain,
            **({"budget": self.budget} if self.budget is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompressionConfig:
        """The config `to_dict` described (also after a JSON round trip: lists become tuples again)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("method"), (Mapping, str)):
            raise ValueError(
                f"a compression config dict has a 'method' (name or {{'name': ..., settings}}), got {data!r}."
            )
        unknown = sorted(set(data) - {"method", "video_drop", "audio_drop", "retain", "budget"})
        if unknown:
            raise ValueError(
                f"unknown compression config keys {unknown}; known: method, video_drop, audio_drop, retain, budget."
            )
        method = data["method"]
        name, settings = (method, {}) if isinstance(method, str) else (method.get("name"), dict(method))
        settings.pop("name", None)
        return cls(
            method=name,
            video_drop=data.get("video_drop", DEFAULT_VIDEO_DROP),
            audio_drop=data.get("audio_drop", DEFAULT_AUDIO_DROP),
            retain=data.get("retain", DEFAULT_RETAIN),
            method_params=_settings_from_json(name, settings),
            budget=data.get("budget"),
        )

    def with_method(self, **settings: Any) -> CompressionConfig:
        """A copy whose method has these settings changed (e.g. `selector=path`)."""
        return dataclasses.replace(self, method=dataclasses.replace(self.method, **settings))


def _settings_from_json(name: object, settings: dict[str, Any]) -> dict[str, Any]:
    """Undo what JSON did to method settings: tuples came back as lists; a module cannot come back."""
    if not isinstance(name, str) or name not in METHODS:
        return settings
    defaults = {f.name: f.default for f in setting_fields(METHODS[name])}
    restored = {}
    for key, value in settings.items():
        if isinstance(value, list) and isinstance(defaults.get(key), tuple):
            value = tuple(value)
        if isinstance(value, str) and value.startswith("<") and value.endswith(" module>"):
            raise ValueError(
                f"method {name!r} setting {key} was an in-memory module ({value}), which a dict cannot carry: "
                f"save it (omnisift.save_selector) and give its path, or pass the module again with "
                f"config.with_method({key}=...)."
            )
        restored[key] = value
    return restored


def compression_from_settings(
    method: str | SelectionMethod = DEFAULT_METHOD,
    *,
    video_drop: float | None = None,
    audio_drop: float | None = None,
    retain: float | None = None,
    selector: nn.Module | str | Path | None = None,
    seed: int | None = None,
    method_params: Mapping[str, Any] | None = None,
    budget: str | None = None,
) -> CompressionConfig | None:
    """The config for flat settings as commands and `--model_args` take them (None: full tokens).

    An unset drop (None) takes its default. With `method` none/full every other setting would be
    ignored, so giving one is refused by name.
    """
    if isinstance(method, str) and method in NO_COMPRESSION:
        given = {
            "video_drop": video_drop,
            "audio_drop": audio_drop,
            "retain": retain,
            "selector": selector,
            "seed": seed,
            "budget": budget,
            **dict(method_params or {}),
        }
        ignored = [f"{k}={v!r}" for k, v in given.items() if v is not None]
        if ignored:
            raise ValueError(
                f"method {method!r} keeps every token, so {', '.join(ignored)} would be ignored: leave "
                f"{'it' if len(ignored) == 1 else 'them'} out, or choose a compression method."
            )
        return None
    return CompressionConfig(
        method=method,
        video_drop=DEFAULT_VIDEO_DROP if video_drop is None else video_drop,
        audio_drop=DEFAULT_AUDIO_DROP if audio_drop is None else audio_drop,
        retain=retain,
        selector=selector,
        seed=seed,
        method_params=dict(method_params or {}),
        budget=budget,
    )


def _ratio_flag(text: str) -> float:
    """A float flag value; nan and inf parse, so the config refuses them with the common message."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def add_compression_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    method_help: str = "compression method (`omnisift methods` lists them), or 'none' for full tokens",
    selector: bool = True,
    seed: bool = True,
) -> None:
    """Add --method, --video-drop, --audio-drop, --retain, --method-param (and --selector, --seed)."""
    parser.add_argument("--method", default=DEFAULT_METHOD, help=f"{method_help} (default {DEFAULT_METHOD})")
    parser.add_argument(
        "--video-drop",
        type=_ratio_flag,
        help=f"fraction of video tokens dropped, in [0, 1) (default {DEFAULT_VIDEO_DROP})",
    )
    parser.add_argument(
        "--audio-drop",
        type=_ratio_flag,
        help=f"fraction of audio tokens dropped, in [0, 1) (default {DEFAULT_AUDIO_DROP})",
    )
    parser.add_argument(
        "--retain",
        type=_ratio_flag,
        help="fraction of audio+video tokens kept, in (0, 1]; overrides --video-drop (default: none)",
    )
    parser.add_argument(
        "--budget",
        choices=[k for k in BUDGET_KINDS if k is not None],
        help="how --retain is read: 'input' (kept at the LLM input) or 'layer-avg' (kept averaged over the LLM's "
        "layers, SEATS' convention; pre-LLM methods then match SEATS' per-modality pair at the same R). Default: "
        "the method's own (pre-LLM: input; seats/fastv/fastv-om: layer-avg)",
    )
    if selector:
        parser.add_argument(
            "--selector", help="trained audio selector (.safetensors or OmniSIFT checkpoint folder)"
        )
    if seed:
        parser.add_argument("--seed", type=int, help="seed of methods that draw at random (default 0)")
    parser.add_argument(
        "--method-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting of the method (repeatable; `omnisift methods` lists them), e.g. knn=3",
    )
    shortcuts = tuple(name for name, added in (("selector", selector), ("seed", seed)) if added)
    parser.set_defaults(compression_shortcuts=shortcuts)  # a command's own --seed is not the method's


def compression_from_args(args: argparse.Namespace) -> CompressionConfig | None:
    """The config the flags of `add_compression_arguments` describe (None for `--method none`)."""
    return compression_from_settings(
        args.method,
        video_drop=args.video_drop,
        audio_drop=args.audio_drop,
        retain=args.retain,
        selector=args.selector if "selector" in args.compression_shortcuts else None,
        seed=args.seed if "seed" in args.compression_shortcuts else None,
        method_params=parse_method_params(args.method_param),
        budget=getattr(args, "budget", None),
    )
