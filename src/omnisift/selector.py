"""The vision-guided audio selector (VGAS): a small cross-attention scorer of audio tokens.

Parameter names and the forward follow the published OmniSIFT checkpoint (docs/design.md#the-selector-and-its-checkpoint), so its
`thinker.compressor.*` weights load as they are.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .ops import group_slots
from .weight_files import unreadable_message

__all__ = [
    "VisionGuidedAudioSelector",
    "RANDOM_SELECTOR",
    "SelectorSource",
    "source_selector",
    "selector_from_state",
    "load_selector",
    "save_selector",
    "find_selector_keys",
    "CHECKPOINT_PREFIX",
]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "thinker.compressor."
"""Key prefix of the selector inside a released OmniSIFT checkpoint (the published `compressor` module)."""

RANDOM_SELECTOR = "random"
"""`source_selector` source of a random-init selector (fixtures, training from scratch; needs a seed)."""

SelectorSource = nn.Module | str | Path | Mapping[str, torch.Tensor]
"""Where a selector comes from: a module, a `.safetensors` file, a checkpoint folder, a state dict of
prefix-stripped keys, or `RANDOM_SELECTOR`."""


class VisionGuidedAudioSelector(nn.Module):
    """Scores each audio token of a chunk against the chunk's visual anchors (higher = keep)."""

    def __init__(self, hidden_size: int, width: int = 512, heads: int = 8) -> None:
        super().__init__()
        if hidden_size <= 0 or width <= 0 or heads <= 0 or width % heads:
            raise ValueError(
                f"bad selector shape hidden_size={hidden_size}, width={width}, heads={heads}: all must be "
                "positive and width divisible by heads."
            )
        self.hidden_size = hidden_size
        self.width = width
        self.heads = heads
        self.v_proj = nn.Linear(hidden_size, width)
        self.a_proj = nn.Linear(hidden_size, width)
        self.v_norm = nn.LayerNorm(width)
        self.a_norm = nn.LayerNorm(width)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.post_attn_norm = nn.LayerNorm(width)
        self.score_head = nn.Sequential(nn.Linear(width, 256), nn.SiLU(), nn.Linear(256, 1))

    def forward(self, anchors: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """Scores in (0, 1) for one or more chunks.

        Args:
            anchors: [C, Lv, hidden] (or [Lv, hidden]) kept video tokens of each chunk.
            audio: [C, La, hidden] (or [La, hidden]) audio tokens of each chunk.
        Returns:
            [C, La] (or [La]) scores.
        """
        single = audio.ndim == 2
        if single:
            anchors, audio = anchors.unsqueeze(0), audio.unsqueeze(0)
        device = audio.device
        anchors, audio = self._own(anchors), self._own(audio)
        a = self.a_norm(self.a_proj(audio))
        v = self.v_norm(self.v_proj(anchors))
        scores = self._score(a, v, key_padding_mask=None).to(device)
        return scores[0] if single else scores

    def _own(self, tokens: torch.Tensor) -> torch.Tensor:
        """`tokens` in this selector's dtype and device: a selector that trains (its module is used as it is,
        so gradients reach it) may sit in fp32 beside a bf16 model, or on another device."""
        weight = self.v_proj.weight
        return tokens.to(device=weight.device, dtype=weight.dtype)

    def _score(self, a: torch.Tensor, v: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        attended, _ = self.cross_attn(a, v, v, key_padding_mask=key_padding_mask, need_weights=False)
        x = self.post_attn_norm(attended + a)
        return torch.sigmoid(self.score_head(x).squeeze(-1))

    def score_groups(
        self,
        anchors: torch.Tensor,
        anchor_group: torch.Tensor,
        audio: torch.Tensor,
        audio_group: torch.Tensor,
        num_groups: int,
    ) -> torch.Tensor:
        """Scores every audio token of many chunks in one padded call.

        Each chunk attends only to its own anchors (a key padding mask hides the rest). Projections run
        on the flat token lists, so the `v_proj` matmul touches only the anchors.

        Args:
            anchors: [K, hidden] anchor tokens of all chunks, grouped by chunk.
            anchor_group: [K] chunk of each anchor, non-decreasing.
            audio: [A, hidden] audio tokens to score, grouped by chunk.
            audio_group: [A] chunk of each audio token, non-decreasing.
            num_groups: number of chunks C.
        Returns:
            [A] scores, in the order of `audio`.
        """
        if audio.numel() == 0:
            return audio.new_zeros(0)
        caller_device = audio.device
        anchors, audio = self._own(anchors), self._own(audio)
        device = audio.device
        anchor_group, audio_group = anchor_group.to(anchors.device), audio_group.to(audio.device)
        v = self.v_norm(self.v_proj(anchors))
        a = self.a_norm(self.a_proj(audio))
        anchor_slot, anchor_len = group_slots(anchor_group, num_groups)
        audio_slot, audio_len = group_slots(audio_group, num_groups)
        # One host sync for both padded sizes.
        max_anchor, max_audio = (int(x) for x in torch.stack([anchor_len.max(), audio_len.max()]).tolist())
        max_anchor = max(max_anchor, 1)
        padded_v = v.new_zeros(num_groups, max_anchor, v.shape[-1])
        padded_v[anchor_group, anchor_slot] = v
        padded_a = a.new_zeros(num_groups, max_audio, a.shape[-1])
        padded_a[audio_group, audio_slot] = a
        key_padding = torch.arange(max_anchor, device=device).unsqueeze(0) >= anchor_len.unsqueeze(1)
        # A chunk without anchors would softmax over nothing; give it one dummy key (its audio is kept whole).
        key_padding[:, 0] &= anchor_len > 0
        scores = self._score(padded_a, padded_v, key_padding_mask=key_padding)
        return scores[audio_group, audio_slot].to(caller_device)


def _expected_shapes(hidden_size: int, width: int = 512) -> dict[str, tuple[int, ...]]:
    return {
        name: tuple(p.shape) for name, p in VisionGuidedAudioSelector(hidden_size, width).state_dict().items()
    }


def _unreadable(file: Path, error: Exception) -> str:
    return unreadable_message(
        file,
        error,
        "selector file",
        "pass a selector written by omnisift.save_selector / omnisift train or the OmniSIFT checkpoint folder "
        "(download it again if it was cut short).",
    )


@contextmanager
def _open(file: Path) -> Iterator[Any]:
    """`safe_open` whose failures name the file and what is wrong with it."""
    try:
        with safe_open(str(file), framework="pt") as handle:
            yield handle
    except (SafetensorError, OSError) as error:
        raise ValueError(_unreadable(file, error)) from None


def find_selector_keys(path: str | Path) -> dict[str, Path]:
    """Map each selector key (prefix stripped) to the safetensors file that holds it.

    `path` is a single `.safetensors` file or a folder with `model.safetensors.index.json` (sharded) or a
    single `model.safetensors`. Keys may carry the published `thinker.compressor.` prefix or be bare.
    Only the index is read for a sharded folder, so shards without selector keys are never opened.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"selector checkpoint {path} does not exist.")
    if path.is_dir():
        index = path / "model.safetensors.index.json"
        if index.exists():
            try:
                weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as error:
                raise ValueError(
                    f"{index} is not a safetensors index (JSON with a 'weight_map'): {error}."
                ) from None
            return _select_keys(((k, path / f) for k, f in weight_map.items()), path)
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise FileNotFoundError(
                f"{path} holds no model.safetensors.index.json and no .safetensors file: pass the folder of "
                "the OmniSIFT checkpoint or a selector .safetensors file."
            )
        pairs: list[tuple[str, Path]] = []
        for file in files:
            with _open(file) as handle:
                pairs.extend((k, file) for k in handle.keys())
        return _select_keys(pairs, path)
    with _open(path) as handle:
        return _select_keys(((k, path) for k in handle.keys()), path)


def _select_keys(pairs: Iterable[tuple[str, Path]], origin: Path) -> dict[str, Path]:
    pairs = list(pairs)
    prefixed = {k[len(CHECKPOINT_PREFIX) :]: f for k, f in pairs if k.startswith(CHECKPOINT_PREFIX)}
    if prefixed:
        return prefixed
    modules = tuple(f"{name}." for name in _SELECTOR_MODULES)
    bare = {k: f for k, f in pairs if k.startswith(modules)}
    if not bare:
        raise ValueError(
            f"{origin} holds no selector weights (no '{CHECKPOINT_PREFIX}*' keys and no bare selector keys). "
            "A checkpoint without a trained selector cannot run OmniSIFT: pass the OmniSIFT checkpoint or a "
            "file written by save_selector / omnisift train."
        )
    return bare


_SELECTOR_MODULES = ("v_proj", "a_proj", "v_norm", "a_norm", "cross_attn", "post_attn_norm", "score_head")


def load_selector(
    path: str | Path,
    *,
    hidden_size: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> VisionGuidedAudioSelector:
    """Load a selector from a safetensors file or a (sharded) checkpoint folder.

    The hidden size is read from `v_proj.weight`; pass `hidden_size` to also check it against a model.
    Fails with the names of missing, unexpected and wrongly shaped keys, or with the file and what is
    wrong with it (empty, truncated, a pickle).
    """
    key_files = find_selector_keys(path)
    tensors: dict[str, torch.Tensor] = {}
    by_file: dict[Path, list[str]] = {}
    for key, file in key_files.items():
        by_file.setdefault(file, []).append(key)
    for file, keys in by_file.items():
        with _open(file) as handle:
            available = set(handle.keys())
            for key in keys:
                stored = CHECKPOINT_PREFIX + key if CHECKPOINT_PREFIX + key in available else key
                try:
                    tensors[key] = handle.get_tensor(stored)
                except SafetensorError as error:
                    raise ValueError(_unreadable(file, error)) from None
    selector = selector_from_state(tensors, origin=str(path), hidden_size=hidden_size)
    logger.info("loaded selector (hidden %d, width %d) from %s", selector.hidden_size, selector.width, path)
    return selector.to(device=device, dtype=dtype).eval()


def selector_from_state(
    tensors: Mapping[str, torch.Tensor], *, origin: str, hidden_size: int | None = None
) -> VisionGuidedAudioSelector:
    """A selector from its weights (keys without the checkpoint prefix), after the one key and shape check.

    `origin` names where the weights came from in errors. The width is read from `v_proj.weight`, the
    heads follow the published rule (8 when the width allows, else 1).
    """
    if "v_proj.weight" not in tensors:
        raise ValueError(f"{origin}: selector key 'v_proj.weight' is missing, so the hidden size is unknown.")
    width, found_hidden = tensors["v_proj.weight"].shape
    if hidden_size is not None and found_hidden != hidden_size:
        raise ValueError(
            f"{origin}: the selector was trained for hidden size {found_hidden} but the model has {hidden_size}; "
            "use a selector trained for this model (the released one is for Qwen2.5-Omni-7B, hidden 3584)."
        )
    expected = _expected_shapes(found_hidden, width)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if tuple(tensors[k].shape) != expected[k])
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing keys {missing}")
        if unexpected:
            details.append(f"unexpected keys {unexpected}")
        if wrong:
            details.append(
                "wrong shapes " + ", ".join(f"{k} {tuple(tensors[k].shape)} != {expected[k]}" for k in wrong)
            )
        raise ValueError(f"{origin} is not a valid selector checkpoint: " + "; ".join(details) + ".")
    selector = VisionGuidedAudioSelector(found_hidden, width, 8 if width % 8 == 0 else 1)
    selector.load_state_dict(dict(tensors))
    return selector.eval()


def random_selector(hidden_size: int, seed: int) -> VisionGuidedAudioSelector:
    """A random-init selector drawn from `seed` alone (the global random state is left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VisionGuidedAudioSelector(hidden_size)


def source_selector(
    source: SelectorSource,
    *,
    hidden_size: int | None = None,
    seed: int | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> nn.Module:
    """The selector `source` names, checked against the model's `hidden_size` (the one way to get one).

    `source` is a module (returned as it is), a selector `.safetensors` file or a checkpoint folder with
    `thinker.compressor.*` keys (`load_selector`), a state dict of prefix-stripped keys (a served
    checkpoint's), or `RANDOM_SELECTOR` with an explicit `seed` and `hidden_size` (fixtures).
    """
    if isinstance(source, nn.Module):
        found = getattr(source, "hidden_size", None)
        if hidden_size is not None and found is not None and found != hidden_size:
            raise ValueError(
                f"the selector has hidden size {found} but the model has {hidden_size}: use a selector built or "
                "trained for this model."
            )
        return source
    if isinstance(source, str) and source == RANDOM_SELECTOR:
        if seed is None or hidden_size is None:
            raise ValueError(
                "a random selector needs an explicit seed and hidden_size (it must be reproducible)."
            )
        return random_selector(hidden_size, seed).to(device=device, dtype=dtype)
    if isinstance(source, Mapping):
        state = selector_from_state(
            source, origin="the checkpoint's selector weights", hidden_size=hidden_size
        )
        return state.to(device=device, dtype=dtype)
    if isinstance(source, (str, Path)):
        return load_selector(source, hidden_size=hidden_size, device=device, dtype=dtype)
    raise ValueError(
        f"a selector is a module, a .safetensors file, a checkpoint folder or {RANDOM_SELECTOR!r}, got "
        f"{type(source).__name__}."
    )


def save_selector(selector: VisionGuidedAudioSelector, path: str | Path, *, prefixed: bool = True) -> Path:
    """Write the selector's weights as safetensors under the published key names."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / "selector.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = CHECKPOINT_PREFIX if prefixed else ""
    state = {prefix + k: v.detach().contiguous().cpu() for k, v in selector.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt", "hidden_size": str(selector.hidden_size)})
    return path
