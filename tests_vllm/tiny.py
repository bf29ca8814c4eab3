"""A saved, position-sensitive tiny Qwen2.5-Omni thinker and noisy clips for vLLM parity tests.

vLLM reads a full Qwen2.5-Omni checkpoint (config `qwen2_5_omni`, weights `thinker.*`), its CPU
attention needs head_dim 32 or more, and the output layer must not be tied. With std-0.02 weights
wrong positions hardly change greedy output, so q/k are scaled up until they do. Frames carry fresh
noise so the temporal rule meets no near-ties that float differences between engines could flip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import Qwen2_5OmniConfig, Qwen2_5OmniThinkerForConditionalGeneration

from omnisift.models.qwen2_5_omni import fixtures
from omnisift.testing.processors import greedy_by_default

HIDDEN = 64
QK_SCALE = 6.0
MIN_PIXELS, MAX_PIXELS = fixtures.TINY_MIN_PIXELS, fixtures.TINY_MAX_PIXELS
"""Frame pixel bounds both engines are given (the processor class's own defaults would upscale)."""


def build_thinker(seed: int = 0) -> Qwen2_5OmniThinkerForConditionalGeneration:
    config = fixtures.tiny_thinker_config(hidden_size=HIDDEN)
    text = config.text_config
    text.num_attention_heads, text.num_key_value_heads, text.head_dim = 2, 1, 32
    text.rope_parameters = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 6, 6]}
    text.tie_word_embeddings = False
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen2_5OmniThinkerForConditionalGeneration._from_config(
            config, attn_implementation="sdpa", dtype=torch.float32
        )
        with torch.no_grad():
            for layer in model.model.language_model.layers:
                layer.self_attn.q_proj.weight.mul_(QK_SCALE)
                layer.self_attn.k_proj.weight.mul_(QK_SCALE)
    greedy_by_default(model, fixtures.PAD_ID, fixtures.IM_END_ID)
    return model.eval()


_RENAMES = (
    ("model.language_model.", "model."),
    ("model.audio_tower.", "audio_tower."),
    ("model.visual.", "visual."),
)


def _checkpoint_key(name: str) -> str:
    """The released checkpoints' key of a parameter (transformers 5.23 nests the towers under `model.`)."""
    for new, old in _RENAMES:
        if name.startswith(new):
            return old + name[len(new) :]
    return name


def save_checkpoint(model: Qwen2_5OmniThinkerForConditionalGeneration, folder: Path) -> Path:
    """Write what vLLM loads: the full-model config (no talker weights), `thinker.*` weights, processor."""
    folder.mkdir(parents=True, exist_ok=True)
    full = Qwen2_5OmniConfig(thinker_config=model.config.to_dict(), enable_audio_output=False)
    full.architectures = ["Qwen2_5OmniForConditionalGeneration"]
    full.thinker_config.vision_start_token_id = fixtures.VISION_BOS_ID
    full.save_pretrained(folder)
    state = {f"thinker.{_checkpoint_key(k)}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    fixtures.tiny_processor().save_pretrained(folder)
    return folder


def clip(seconds: float, fps: float, seed: int, size: int = 112) -> tuple[np.ndarray, np.ndarray]:
    """Frames [T, H, W, 3] uint8 sampled at `fps` (gradient plus per-frame noise) and 16 kHz audio."""
    rng = np.random.default_rng(seed)
    count = max(2, int(round(seconds * fps)))
    count += count % 2
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size
    frames = []
    for i in range(count):
        base = np.stack([80 + 100 * xs, 80 + 100 * ys, 60 + 100 * ((xs + ys + i / count) % 1.0)], -1)
        frames.append((base + rng.normal(0, 25, base.shape)).clip(0, 255).astype(np.uint8))
    samples = int(seconds * 16000)
    t = np.arange(samples) / 16000
    audio = 0.3 * np.sin(2 * np.pi * (300 + 50 * seed) * t * (1 + np.floor(t) / 4))
    audio = (audio + rng.normal(0, 0.05, samples)).astype(np.float32)
    return np.stack(frames), audio


def image(seed: int, size: int = 112) -> np.ndarray:
    """One noisy RGB image [H, W, 3] uint8."""
    rng = np.random.default_rng(100 + seed)
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
