"""Transformers-side references for the vLLM parity tests, run in the project's own environment.

vLLM pins transformers <5.20, where the thinker is laid out differently and `omnisift.attach` (built
for 5.23) does not apply, so the references come from `.venv` (transformers 5.23) in a subprocess:

    .venv/bin/python tests_vllm/reference.py OUT_DIR

writes the tiny checkpoints vLLM loads (OUT_DIR/model: Qwen2.5-Omni, OUT_DIR/qwen3/model: Qwen3-Omni-MoE),
a selector file per family and OUT_DIR/references.json: per case, stock transformers' and transformers +
omnisift.attach's greedy tokens and get_rope_index (Qwen3 cases under the key "qwen3").
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).parent))

import cases  # noqa: E402
import tiny  # noqa: E402
import tiny3  # noqa: E402

from omnisift import CompressionConfig, attach  # noqa: E402
from omnisift.models.qwen2_5_omni import fixtures  # noqa: E402
from omnisift.models.qwen3_omni_moe import fixtures as fixtures3  # noqa: E402
from omnisift.selector import VisionGuidedAudioSelector, save_selector  # noqa: E402


def hf_inputs(processor, case: cases.Case, qwen3: bool = False) -> dict[str, Any]:
    clips = [tiny.clip(c.seconds, c.fps, c.seed) for c in case.clips]
    bounds = (tiny3.MIN_PIXELS, tiny3.MAX_PIXELS) if qwen3 else (tiny.MIN_PIXELS, tiny.MAX_PIXELS)
    size = {"shortest_edge": bounds[0], "longest_edge": bounds[1]}
    text = (
        cases.chat_text3(len(clips), case.question) if qwen3 else cases.chat_text(len(clips), case.question)
    )
    if not case.audio:
        inputs = processor(
            text=[text],
            videos=[frames for frames, _ in clips],
            fps=case.clips[0].fps,
            videos_kwargs={"size": size},
            return_tensors="pt",
        )
        inputs = dict(inputs)
        inputs["video_second_per_grid"] = torch.as_tensor(
            inputs["video_second_per_grid"], dtype=torch.float32
        )
        return inputs
    extra = {"images": [tiny.image(0)], "images_kwargs": {"size": size}} if case.image else {}
    inputs = processor(
        text=[cases.chat_text(len(clips), case.question, case.image) if case.image else text],
        videos=[frames for frames, _ in clips],
        audio=[audio for _, audio in clips],
        **extra,
        audio_from_video_indices=list(range(len(clips))),
        load_audio_from_video=True,
        fps=case.clips[0].fps,
        videos_kwargs={"size": size},
        return_tensors="pt",
    )
    inputs = dict(inputs)
    inputs["video_second_per_grid"] = torch.as_tensor(inputs["video_second_per_grid"], dtype=torch.float32)
    return inputs


def rope_positions(model, inputs: dict[str, Any], audio: bool) -> list[list[int]]:
    get_rope_index = getattr(model, "get_rope_index", None) or model.model.get_rope_index
    positions, _ = get_rope_index(
        inputs["input_ids"],
        inputs.get("image_grid_thw"),
        inputs["video_grid_thw"],
        inputs["attention_mask"],
        audio,
        inputs["feature_attention_mask"].sum(-1) if audio else None,
        inputs["video_second_per_grid"],
    )
    return positions[:, 0].tolist()


def generate(model, inputs: dict[str, Any], config: CompressionConfig | None, audio: bool) -> list[int]:
    handle = attach(model, config) if config is not None else None
    try:
        out = model.generate(
            **inputs, use_audio_in_video=audio, max_new_tokens=cases.NEW_TOKENS, do_sample=False
        )
    finally:
        if handle is not None:
            handle.remove()
    return out[0, inputs["input_ids"].shape[1] :].tolist()


def qwen3_references(out_dir: Path) -> dict:
    """The Qwen3-Omni-MoE checkpoint, its selector and references (positions are get_rope_index's own)."""
    model = tiny3.build_thinker()
    tiny3.save_checkpoint(model, out_dir / "model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        selector = VisionGuidedAudioSelector(tiny3.HIDDEN).eval()
    save_selector(selector, out_dir / "selector.safetensors")
    processor = fixtures3.tiny_processor()
    results = {}
    for name, case in cases.QWEN3_CASES.items():
        inputs = hf_inputs(processor, case, qwen3=True)
        config = case.config(out_dir / "selector.safetensors")
        results[name] = {
            "stock": generate(model, inputs, None, case.audio),
            "attach": generate(model, inputs, config, case.audio),
            "positions": rope_positions(model, inputs, case.audio),
            "input_ids": inputs["input_ids"][0].tolist(),
        }
    return results


def main(out_dir: Path) -> None:
    model = tiny.build_thinker()
    tiny.save_checkpoint(model, out_dir / "model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        selector = VisionGuidedAudioSelector(tiny.HIDDEN).eval()
    save_selector(selector, out_dir / "selector.safetensors")
    processor = fixtures.tiny_processor()
    results = {}
    for name, case in cases.CASES.items():
        inputs = hf_inputs(processor, case)
        config = case.config(out_dir / "selector.safetensors")
        results[name] = {
            "stock": generate(model, inputs, None, case.audio),
            "attach": generate(model, inputs, config, case.audio),
            "positions": rope_positions(model, inputs, case.audio),
            "input_ids": inputs["input_ids"][0].tolist(),
        }
    results["qwen3"] = qwen3_references(out_dir / "qwen3")
    (out_dir / "references.json").write_text(json.dumps(results))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
