"""Checks of weight files before a library reads them, so a bad file is named with what is wrong with it.

A zero-byte, truncated or corrupt `.safetensors` file otherwise ends in safetensors' own
`SafetensorError: header too large` from deep inside transformers, without the file's name; a folder
holding only pickled weights (`pytorch_model.bin`) would be unpickled, which can run code. Only the
headers are read here (safetensors maps the file), so the check costs milliseconds even for a 15 GB shard.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

__all__ = ["WeightFileError", "check_checkpoint_folder", "check_safetensors", "unreadable_message"]

_PICKLE_OR_ZIP = (b"\x80", b"PK")
"""First bytes of a pickle (protocol 2+) and of a `torch.save` zip archive."""

PICKLED_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class WeightFileError(ValueError):
    """A weight file (or checkpoint folder) that cannot be read; the message names it and what to do."""


def unreadable_message(file: Path, error: Exception, what: str, todo: str) -> str:
    """`what` (e.g. "selector file") `file` is empty / a pickle / truncated or corrupt; then `todo`."""
    size = file.stat().st_size if file.is_file() else -1
    head = b""
    if size > 0:
        with file.open("rb") as handle:
            head = handle.read(2)
    if size == 0:
        problem = "is empty (0 bytes)"
    elif head.startswith(_PICKLE_OR_ZIP):
        problem = "is a pickle or torch.save file, which omnisift never loads (it could run code)"
    else:
        problem = f"is not a readable safetensors file ({error}): it may be truncated or corrupt"
    return f"{what} {file} {problem}; {todo}"


def check_safetensors(file: Path, what: str, todo: str) -> None:
    """Raise WeightFileError when `file`'s safetensors header cannot be read (empty, pickle, cut short)."""
    try:
        with safe_open(str(file), framework="pt"):
            pass
    except (SafetensorError, OSError) as error:
        raise WeightFileError(unreadable_message(file, error, what, todo)) from None


def _shards(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        return sorted(folder.glob("*.safetensors"))
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        names = sorted(set(weight_map.values()))
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as error:
        raise WeightFileError(
            f"{index} is not a safetensors index (JSON with a 'weight_map' of key -> file): {error}; "
            "download the checkpoint again"
        ) from None
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise WeightFileError(
            f"{index} lists {len(missing)} shard(s) missing from {folder}, e.g. {missing[0]}: the download is "
            "incomplete; download the checkpoint again"
        )
    return [folder / name for name in names]


def check_checkpoint_folder(folder: Path) -> None:
    """Raise WeightFileError naming the file when a model checkpoint folder's weights cannot be loaded:
    no safetensors weights (only pickled ones, or none), a shard missing from the index, or a shard whose
    header is empty, a pickle, truncated or corrupt."""
    shards = _shards(folder)
    if not shards:
        pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLED_SUFFIXES)
        if pickled:
            raise WeightFileError(
                f"model folder {folder} holds only pickled weights ({', '.join(pickled)}), which omnisift never "
                "loads (unpickling can run code): convert them to safetensors (save_pretrained with "
                "safe_serialization) or download the checkpoint's .safetensors files"
            )
        raise WeightFileError(
            f"model folder {folder} holds no weights (no model.safetensors, no model.safetensors.index.json): "
            "pass the folder of a downloaded checkpoint"
        )
    todo = "download the checkpoint again (a cut-short download leaves such a file), or pass another --model"
    for shard in shards:
        check_safetensors(shard, "model weight file", todo)
