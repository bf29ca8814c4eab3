"""The interface every token selection method implements, and the registry that names them.

A method is a dataclass: its fields are its settings (reachable from Python, `omnisift eval` and
`omnisift train` as `--method-param NAME=VALUE`). `select` sees only the layout, the merged embeddings
and the budget; a method that needs model state (a trained selector, an encoder's attention) gets it in
`prepare(adapter)` and gives it back in `release()`.
"""

from __future__ import annotations

import dataclasses
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ..budget import Budget
from ..layout import Layout

if TYPE_CHECKING:
    from ..models.base import ModelAdapter

__all__ = [
    "Selection",
    "SelectionMethod",
    "register",
    "get_method",
    "build_method",
    "available_methods",
    "method_settings",
    "setting_fields",
    "parse_method_params",
    "resolve_method",
    "takes_setting",
    "shortcuts_for",
    "SHORTCUTS",
    "METHODS",
    "RUNTIME",
    "UnknownParameterError",
]


class UnknownParameterError(ValueError, TypeError):
    """A setting the method does not have (a TypeError too, as for any unexpected keyword)."""


RUNTIME = {"runtime": True}
"""Field metadata of a method input that is not a setting (e.g. precomputed saliency): it is left out of
the run identity and of the `omnisift methods` listing."""


@dataclass
class Selection:
    """What a method decided for a batch.

    `keep` is [B, N] bool (True = keep; text, special tokens and padding are always True).
    `inputs_embeds` is the embeddings to compress: the input itself, or a tensor whose kept rows
    carry merged features or the straight-through factor.
    """

    keep: torch.Tensor
    inputs_embeds: torch.Tensor


@dataclass
class SelectionMethod(ABC):
    """A token selection method: given the layout and the merged embeddings, decide what to keep.

    Subclasses are dataclasses whose fields are the method's own settings. They must keep, per sample,
    exactly the video and audio counts the budget gives (`budget.video_keep_per_grid`,
    `budget.audio_keep_per_group`), so that methods compare at equal token budgets.
    """

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    modalities: ClassVar[str] = "audio+video"
    uses: ClassVar[str] = "training-free"
    """What the method needs besides the embeddings, for listings ("trained selector", ...)."""

    def check_budget(self, video_drop: float, audio_drop: float, retain: float | None) -> None:
        """Raise a ValueError when these settings cannot run at this budget (checked before any model runs)."""
        return None

    def prepare(self, adapter: ModelAdapter) -> None:
        """Take what the method needs from the model (load weights, install hooks). Default: nothing."""
        return None

    def release(self) -> None:
        """Undo `prepare` (remove hooks). Default: nothing."""
        return None

    @abstractmethod
    def select(self, layout: Layout, inputs_embeds: torch.Tensor, budget: Budget) -> Selection:
        """Return the keep mask (and possibly new embeddings) for the batch."""


METHODS: dict[str, type[SelectionMethod]] = {}


def register(cls: type[SelectionMethod]) -> type[SelectionMethod]:
    """Class decorator adding a method to the registry under `cls.name`."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty `name` to be registered.")
    METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    return sorted(METHODS)


def setting_fields(cls: type[SelectionMethod]) -> list[dataclasses.Field]:
    """The dataclass fields that are settings (not runtime inputs)."""
    return [f for f in dataclasses.fields(cls) if f.init and not f.metadata.get("runtime")]


def get_method(name: str, **params: Any) -> SelectionMethod:
    """Instantiate a registered method by name with its settings; errors name the unknown ones."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(available_methods())}.")
    cls = METHODS[name]
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(params) - known)
    if unknown:
        settings = ", ".join(sorted(known)) or "none"
        raise UnknownParameterError(
            f"method {name!r} has no parameter {', '.join(unknown)}; its parameters: {settings}."
        )
    return cls(**params)


def build_method(method: str | SelectionMethod, **params: Any) -> SelectionMethod:
    """A method instance from a registered name plus settings, or the given instance (then no settings)."""
    if isinstance(method, SelectionMethod):
        if params:
            raise ValueError(
                f"pass settings ({', '.join(sorted(params))}) to the method instance itself, e.g. "
                f"{type(method).__name__}(...), not next to it."
            )
        return method
    if not isinstance(method, str):
        raise ValueError(
            f"method must be a registered name or a SelectionMethod, got {type(method).__name__}."
        )
    return get_method(method, **params)


SHORTCUTS = ("selector", "seed")
"""Settings several methods share, accepted next to the method name (`CompressionConfig(selector=...)`)."""


def resolve_method(
    method: str | SelectionMethod, *, params: dict[str, Any] | None = None, **shortcuts: Any
) -> SelectionMethod:
    """A method instance from a name, its settings and the `selector` / `seed` shortcuts.

    A shortcut and a setting of the same name must not both be given (`seed=3` and `{"seed": 4}`), and a
    shortcut the method has no field for is refused by name: a deterministic method has no seed and a
    training-free one no selector, so the value would be ignored. An instance is returned as it is (its
    settings are its own: nothing may be given next to it).
    """
    params = dict(params or {})
    given = {name: value for name, value in shortcuts.items() if value is not None}
    unknown = sorted(set(given) - set(SHORTCUTS))
    if unknown:
        raise TypeError(f"resolve_method() got unexpected shortcuts {unknown}; settings go in `params`.")
    for name, value in given.items():
        if name in params and params[name] != value:
            raise ValueError(
                f"{name} is given twice, as {name}={value!r} and as the method setting {name}={params[name]!r}: "
                "give it once."
            )
        params[name] = value
    if isinstance(method, SelectionMethod):
        return build_method(method, **params)
    if isinstance(method, str) and method in METHODS:
        for name in sorted(n for n in given if not takes_setting(method, n)):
            takers = sorted(n for n in METHODS if takes_setting(n, name))
            raise ValueError(
                f"method {method!r} has no {name} setting, so {name}={_short(given[name])} would be ignored: "
                f"leave it out, or choose a method that takes one ({', '.join(takers)})."
            )
    return build_method(method, **params)


def takes_setting(method: str, setting: str) -> bool:
    """True when the registered method `method` has the setting `setting` (e.g. "seed", "selector")."""
    return method in METHODS and setting in {f.name for f in setting_fields(METHODS[method])}


def shortcuts_for(method: str, **shortcuts: Any) -> dict[str, Any]:
    """The given shortcuts (`selector=`, `seed=`) that `method` takes, for code that sweeps over methods:
    `CompressionConfig(method=name, **shortcuts_for(name, selector=s, seed=3))`."""
    return {name: value for name, value in shortcuts.items() if takes_setting(method, name)}


def _short(value: Any) -> str:
    return f"<{type(value).__name__} module>" if isinstance(value, torch.nn.Module) else repr(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, torch.nn.Module):
        return f"<{type(value).__name__} module>"
    if isinstance(value, torch.Tensor):
        return f"<tensor {tuple(value.shape)}>"
    return value


def method_settings(method: SelectionMethod) -> dict[str, Any]:
    """The method's name and settings as a JSON-able dict (what identifies a run's method)."""
    settings = {f.name: _jsonable(getattr(method, f.name)) for f in setting_fields(type(method))}
    return {"name": method.name, **settings}


def parse_method_params(pairs: list[str] | None) -> dict[str, Any]:
    """`["knn=3", "alphas=[0.5,1]", "selector=path"]` -> settings; values are JSON where they parse as
    JSON (numbers, lists, true/false/null), else strings."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"method parameter {pair!r} is not NAME=VALUE (e.g. --method-param knn=3).")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[key.strip()] = value
    return params
