"""Resumable training state in safetensors and JSON only: nothing in a checkpoint is ever unpickled.

A checkpoint folder holds
- `model.safetensors`: the trainable weights (frozen ones come from the base model),
- `optimizer.safetensors` + `optimizer.json`: the optimizer's per-parameter tensors and its groups,
- `scheduler.json`: the learning-rate scheduler's counters,
- `scaler.json` (fp16 only): the gradient scaler,
- `rng-<rank>.safetensors` + `rng-<rank>.json`: every random generator of each process.
The trainer writes `trainer_state.json` last, with the size of every file, so a checkpoint whose
files were cut short or replaced is detected before anything is loaded.

`read_state` reads and checks a whole folder without touching the model, so a broken checkpoint can be
skipped for an older one; `apply_state` then restores it.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CheckpointError",
    "SavedState",
    "apply_state",
    "file_sizes",
    "read_state",
    "rng_files",
    "save_rng",
    "save_state",
]

logger = logging.getLogger(__name__)

MODEL_FILE = "model.safetensors"
OPTIMIZER_TENSORS = "optimizer.safetensors"
OPTIMIZER_FILE = "optimizer.json"
SCHEDULER_FILE = "scheduler.json"
SCALER_FILE = "scaler.json"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, cut short or unreadable (the message names it)."""


def rng_files(rank: int) -> tuple[str, str]:
    return f"rng-{rank}.safetensors", f"rng-{rank}.json"


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, allow_nan=True), encoding="utf-8")


def save_state(
    path: Path, weights: dict[str, torch.Tensor], optimizer: Any, scheduler: Any, scaler: Any | None
) -> list[str]:
    """Write the shared (main-process) part of the state; returns the file names."""
    path.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, str(path / MODEL_FILE))
    opt = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for index, values in opt["state"].items():
        for key, value in values.items():
            if torch.is_tensor(value):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain.setdefault(str(index), {})[key] = value
    save_file(tensors, str(path / OPTIMIZER_TENSORS))
    _write_json(path / OPTIMIZER_FILE, {"param_groups": opt["param_groups"], "state": plain})
    _write_json(path / SCHEDULER_FILE, scheduler.state_dict())
    names = [MODEL_FILE, OPTIMIZER_TENSORS, OPTIMIZER_FILE, SCHEDULER_FILE]
    if scaler is not None:
        _write_json(path / SCALER_FILE, scaler.state_dict())
        names.append(SCALER_FILE)
    return names


def save_rng(path: Path, rank: int) -> list[str]:
    """Write this process's random generators (python, numpy, torch CPU and CUDA)."""
    path.mkdir(parents=True, exist_ok=True)
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    tensors = {"torch_cpu": torch.get_rng_state(), "numpy_keys": torch.from_numpy(keys.astype(np.int64))}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{i}"] = state
    tensor_file, json_file = rng_files(rank)
    save_file(tensors, str(path / tensor_file))
    _write_json(
        path / json_file,
        {
            "numpy": {
                "kind": kind,
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached),
            },
            "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
            "cuda_devices": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        },
    )
    return [tensor_file, json_file]


def file_sizes(path: Path, names: list[str]) -> dict[str, int]:
    return {name: (path / name).stat().st_size for name in names}


@dataclass
class SavedState:
    """A checkpoint read into memory and checked (see `read_state`)."""

    path: Path
    trainer: dict[str, Any]
    weights: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    rng_tensors: dict[str, torch.Tensor]
    rng: dict[str, Any]
    loaded: list[Path] = field(default_factory=list)


def _read(path: Path, name: str, expected: dict[str, int], loaded: list[Path]) -> Any:
    file = path / name
    if not file.is_file():
        raise CheckpointError(f"{file} is missing")
    size = file.stat().st_size
    if name in expected and expected[name] != size:
        raise CheckpointError(
            f"{file} has {size} bytes where {expected[name]} were written (cut short or replaced)"
        )
    try:
        data = load_file(str(file)) if name.endswith(".safetensors") else json.loads(file.read_text("utf-8"))
    except (SafetensorError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{file} cannot be read ({exc})") from exc
    loaded.append(file)
    return data


def read_state(path: Path, trainer_file: str, rank: int) -> SavedState:
    """Read and check every file of a checkpoint folder this process needs; raise `CheckpointError`
    naming the first bad one. Nothing is applied yet."""
    loaded: list[Path] = []
    trainer = _read(path, trainer_file, {}, loaded)
    if not isinstance(trainer, dict) or not isinstance(trainer.get("files"), dict):
        raise CheckpointError(
            f"{path / trainer_file} lists no checkpoint files: written by an older omnisift whose checkpoints "
            "held pickles, which are never loaded; start a new run (another --out, or --overwrite)"
        )
    sizes = {str(k): int(v) for k, v in trainer["files"].items()}
    weights = _read(path, MODEL_FILE, sizes, loaded)
    tensors = _read(path, OPTIMIZER_TENSORS, sizes, loaded)
    groups = _read(path, OPTIMIZER_FILE, sizes, loaded)
    scheduler = _read(path, SCHEDULER_FILE, sizes, loaded)
    scaler = _read(path, SCALER_FILE, sizes, loaded) if SCALER_FILE in sizes else None
    tensor_file, json_file = rng_files(rank)
    for name in (tensor_file, json_file):
        if not (path / name).is_file():
            raise CheckpointError(
                f"{path / name} is missing: an exact resume needs this process's random state (was the run "
                "saved with another number of processes, or the file deleted?)"
            )
    rng_tensors = _read(path, tensor_file, sizes, loaded)
    rng = _read(path, json_file, sizes, loaded)
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for index, values in groups.get("state", {}).items():
        state.setdefault(int(index), {}).update(values)
    param_groups = groups.get("param_groups")
    if not isinstance(param_groups, list):
        raise CheckpointError(f"{path / OPTIMIZER_FILE} has no param_groups list")
    for group in param_groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    return SavedState(
        path=path,
        trainer=trainer,
        weights=weights,
        optimizer={"state": state, "param_groups": param_groups},
        scheduler=scheduler,
        scaler=scaler,
        rng_tensors=rng_tensors,
        rng=rng,
        loaded=loaded,
    )


def apply_state(
    saved: SavedState, model: torch.nn.Module, optimizer: Any, scheduler: Any, scaler: Any | None
) -> None:
    """Restore weights, optimizer, scheduler, scaler and random generators from a checked checkpoint."""
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    missing = sorted(trainable - set(saved.weights))
    unexpected = sorted(set(saved.weights) - trainable)
    if missing or unexpected:
        raise CheckpointError(
            f"{saved.path / MODEL_FILE} does not match the trainable weights of this run "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); resume with the settings it was saved with"
        )
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name, value in saved.weights.items():
            params[name].copy_(value.to(params[name].dtype))
    optimizer.load_state_dict(saved.optimizer)
    scheduler.load_state_dict(saved.scheduler)
    if scaler is not None and saved.scaler is not None:
        scaler.load_state_dict(saved.scaler)
    torch.set_rng_state(saved.rng_tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [saved.rng_tensors[k] for k in sorted(saved.rng_tensors) if k.startswith("torch_cuda_")]
        if states:
            torch.cuda.set_rng_state_all(states)
    numpy_state = saved.rng["numpy"]
    keys = saved.rng_tensors["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (
            numpy_state["kind"],
            keys,
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python = saved.rng["python"]
    random.setstate((python["version"], tuple(python["state"]), python["gauss_next"]))
    logger.info("restored training state from %s", ", ".join(str(p) for p in saved.loaded))
