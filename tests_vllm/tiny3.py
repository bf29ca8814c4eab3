"""A saved, position-sensitive tiny Qwen3-Omni-MoE thinker for the vLLM parity tests.

What vLLM needs from the checkpoint (and `omnisift.vllm.checks` enforces): a full `qwen3_omni_moe` config
with weights under `thinker.*` in the released key layout (experts stored one by one), text head size 32
(vLLM's CPU attention), `"mrope_interleaved": true` in the rope parameters, and `vision_config.image_size`
agreeing with `num_position_embeddings`. The fixture's informative init (spread audio projection, sharp
q/k norms) keeps positions and audio scores decisive.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import Qwen3OmniMoeConfig, Qwen3OmniMoeThinkerForConditionalGeneration

from omnisift.models.qwen3_omni_moe import fixtures
from omnisift.models.qwen3_omni_moe.adapter import TOKEN_IDS
from omnisift.testing.processors import greedy_by_default

HIDDEN = 64
HEAD_DIM = 32
MIN_PIXELS, MAX_PIXELS = fixtures.TINY_MIN_PIXELS, fixtures.TINY_MAX_PIXELS


def thinker_config():
    config = fixtures.tiny_thinker_config(hidden_size=HIDDEN)
    text = config.text_config
    text.num_attention_heads = text.num_key_value_heads = HIDDEN // HEAD_DIM
    text.head_dim = HEAD_DIM
    text.rope_parameters = {
        "rope_type": "default",
        "rope_theta": 1e6,
        "mrope_section": [8, 4, 4],
        "interleaved": True,
        "mrope_interleaved": True,
    }
    text.tie_word_embeddings = False
    vision = config.vision_config
    vision.image_size = int(vision.num_position_embeddings**0.5) * vision.patch_size
    vision.apply_vit_abs_pos_embed = True
    return config


def build_thinker(seed: int = 0) -> Qwen3OmniMoeThinkerForConditionalGeneration:
    config = thinker_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Qwen3OmniMoeThinkerForConditionalGeneration._from_config(
            config, attn_implementation="sdpa", dtype=torch.float32
        )
        with torch.no_grad():
            torch.nn.init.normal_(model.model.audio_tower.proj2.weight, std=fixtures.AUDIO_PROJ_STD)
            for layer in model.model.language_model.layers:
                layer.self_attn.q_norm.weight.fill_(fixtures.QK_NORM_SCALE * 1.5)
                layer.self_attn.k_norm.weight.fill_(fixtures.QK_NORM_SCALE * 1.5)
    greedy_by_default(model, fixtures.PAD_ID, fixtures.IM_END_ID)
    return model.eval()


_RENAMES = (
    ("model.language_model.", "model."),
    ("model.audio_tower.", "audio_tower."),
    ("model.visual.", "visual."),
)


def _released_state(model: Qwen3OmniMoeThinkerForConditionalGeneration) -> dict[str, torch.Tensor]:
    """transformers 5.23 keys and fused experts -> the released checkpoints' keys, one tensor per expert."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in model.state_dict().items():
        for new, old in _RENAMES:
            if name.startswith(new):
                name = old + name[len(new) :]
                break
        if name.endswith("mlp.experts.gate_up_proj"):  # [E, 2I, H]: gate rows, then up rows
            prefix = name[: -len("gate_up_proj")]
            gate, up = tensor.chunk(2, dim=1)
            for e in range(tensor.shape[0]):
                out[f"thinker.{prefix}{e}.gate_proj.weight"] = gate[e].contiguous()
                out[f"thinker.{prefix}{e}.up_proj.weight"] = up[e].contiguous()
        elif name.endswith("mlp.experts.down_proj"):  # [E, H, I]
            prefix = name[: -len("down_proj")]
            for e in range(tensor.shape[0]):
                out[f"thinker.{prefix}{e}.down_proj.weight"] = tensor[e].contiguous()
        else:
            out[f"thinker.{name}"] = tensor.contiguous()
    return out


def save_checkpoint(model: Qwen3OmniMoeThinkerForConditionalGeneration, folder: Path) -> Path:
    """The full-model config (no talker), `thinker.*` weights in the released layout, the processor."""
    folder.mkdir(parents=True, exist_ok=True)
    full = Qwen3OmniMoeConfig(thinker_config=model.config.to_dict(), enable_audio_output=False)
    full.architectures = ["Qwen3OmniMoeForConditionalGeneration"]
    thinker = full.thinker_config
    thinker.vision_start_token_id, thinker.vision_end_token_id = TOKEN_IDS.vision_bos, TOKEN_IDS.vision_eos
    thinker.audio_end_token_id = TOKEN_IDS.audio_eos
    full.save_pretrained(folder)
    save_file(_released_state(model), str(folder / "model.safetensors"))
    fixtures.tiny_processor().save_pretrained(folder)
    return folder
