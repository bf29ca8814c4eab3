"""A description of every registered selection method, for the `omnisift methods` listing."""

from __future__ import annotations

import dataclasses
import inspect

from .base import METHODS, SelectionMethod, setting_fields

__all__ = ["describe_methods", "method_summary"]


def method_summary(cls: type[SelectionMethod]) -> str:
    """The method's one-line `summary`, or the first line of its class docstring."""
    summary = getattr(cls, "summary", "")
    if summary:
        return str(summary)
    doc = inspect.getdoc(cls) or ""
    return doc.splitlines()[0] if doc else ""


def _parameters(cls: type[SelectionMethod]) -> dict[str, object]:
    params: dict[str, object] = {}
    for f in setting_fields(cls):
        if f.default is not dataclasses.MISSING:
            params[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            params[f.name] = f.default_factory()
        else:
            params[f.name] = None
    return params


def describe_methods() -> list[dict]:
    """One dict per registered method, sorted by name: name, paper, modalities, what it uses, summary and
    the method's own parameters with their defaults."""
    return [
        {
            "name": cls.name,
            "paper": cls.paper,
            "modalities": cls.modalities,
            "uses": cls.uses,
            "summary": method_summary(cls),
            "parameters": _parameters(cls),
        }
        for _, cls in sorted(METHODS.items())
    ]
