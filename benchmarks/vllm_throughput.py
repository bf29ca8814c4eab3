"""Time to first token and requests per second through vLLM (CPU) at retain 1.0 / 0.35 / 0.25, side by side.

The model is a random-weight Qwen2.5-Omni thinker with the 7B text shape (hidden 3584, 28 heads, 4 KV
heads, MLP 18944, vocab 152064) and `--layers` decoder layers (weights drawn by vLLM's dummy loader),
small random encoders (their cost does not depend on retain; a real 7B vision encoder would add the same
seconds to every row), the omnisift method with a random selector, and noisy clips with their audio at
2 fps. One engine serves every row; each request names its retain (`omnisift.vllm.request_kwargs`).
Prefix and multimodal caches are off so every request pays its full prefill. Run in .venv-vllm:

    VLLM_ENABLE_V1_MULTIPROCESSING=0 .venv-vllm/bin/python benchmarks/vllm_throughput.py --out results/vllm.json

Prefill cost per layer is the same in every layer, so layer-bound times scale with the layer count; the
printed ratios are what compression changes, the absolute seconds are for this machine and depth only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests_vllm"))  # noisy clip writer

import tiny  # noqa: E402
import torch  # noqa: E402

from omnisift import CompressionConfig  # noqa: E402
from omnisift.models.qwen2_5_omni import fixtures  # noqa: E402
from omnisift.selector import VisionGuidedAudioSelector, save_selector  # noqa: E402
from omnisift.vllm import engine_args, request_kwargs  # noqa: E402

HIDDEN = 3584


def write_model(folder: Path, layers: int, frame: int) -> Path:
    """config.json (7B text shape, small encoders) and the tiny processor; weights come from vLLM's dummy loader."""
    from transformers import Qwen2_5OmniConfig

    config = fixtures.tiny_thinker_config(hidden_size=64, num_layers=layers)
    text = config.text_config
    text.hidden_size, text.intermediate_size = HIDDEN, 18944
    text.num_attention_heads, text.num_key_value_heads, text.head_dim = 28, 4, 128
    text.vocab_size = 152064
    text.rope_parameters = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}
    text.tie_word_embeddings = False
    config.audio_config.output_dim = HIDDEN
    config.vision_config.out_hidden_size = HIDDEN
    full = Qwen2_5OmniConfig(thinker_config=config.to_dict(), enable_audio_output=False)
    full.architectures = ["Qwen2_5OmniForConditionalGeneration"]
    full.save_pretrained(folder)
    pixels = frame * frame
    fixtures.tiny_processor(min_pixels=pixels, max_pixels=pixels).save_pretrained(folder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        save_selector(VisionGuidedAudioSelector(HIDDEN).eval(), folder / "selector.safetensors")
    return folder


def request(seconds: float, seed: int, retain: float, frame: int) -> dict:
    frames, audio = tiny.clip(seconds, 2.0, seed, size=frame)
    return {
        "prompt": tiny_prompt(),
        "multi_modal_data": {"video": [frames], "audio": [audio]},
        "mm_processor_kwargs": request_kwargs(
            retain=retain, fps=2.0, min_pixels=frame * frame, max_pixels=frame * frame
        ),
    }


def tiny_prompt() -> str:
    return (
        "<|im_start|>user\n<|vision_bos|><|VIDEO|><|vision_eos|>What happens in this video?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def measure(
    llm, seconds: float, retain: float, frame: int, requests: int, new_tokens: int, seed: int
) -> dict:
    from vllm import SamplingParams

    first = SamplingParams(max_tokens=1, temperature=0)
    start = time.perf_counter()
    out = llm.generate([request(seconds, seed, retain, frame)], first, use_tqdm=False)
    ttft = time.perf_counter() - start
    prompt_tokens = len(out[0].prompt_token_ids)
    batch = [request(seconds, seed + 1 + i, retain, frame) for i in range(requests)]
    params = SamplingParams(max_tokens=new_tokens, temperature=0, ignore_eos=True)
    start = time.perf_counter()
    llm.generate(batch, params, use_tqdm=False)
    wall = time.perf_counter() - start
    return {
        "seconds": seconds,
        "retain": retain,
        "prompt_tokens": prompt_tokens,
        "ttft_s": ttft,
        "requests_per_s": requests / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--frame", type=int, default=224, help="frame side in pixels (224: 64 tokens a grid)")
    parser.add_argument("--seconds", type=float, nargs="+", default=[30.0, 60.0])
    parser.add_argument("--retain", type=float, nargs="+", default=[1.0, 0.35, 0.25])
    parser.add_argument("--requests", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from vllm import LLM

    with tempfile.TemporaryDirectory() as tmp:
        folder = write_model(Path(tmp), args.layers, args.frame)
        config = CompressionConfig(method="omnisift", selector=str(folder / "selector.safetensors"))
        llm = LLM(
            model=str(folder),
            load_format="dummy",
            dtype="bfloat16",
            max_model_len=16384,
            max_num_batched_tokens=16384,
            max_num_seqs=args.requests,
            enable_prefix_caching=False,
            mm_processor_cache_gb=0,
            limit_mm_per_prompt={"video": 1, "audio": 1},
            gpu_memory_utilization=0.2,
            kv_cache_memory_bytes=2 << 30,
            seed=0,
            **engine_args(config),
        )
        for retain in args.retain:  # warm-up: first selector call converts it to the model dtype
            measure(llm, 4.0, retain, args.frame, 1, 2, 999)
        rows = []
        for seconds in args.seconds:
            for retain in args.retain:
                rows.append(
                    measure(
                        llm, seconds, retain, args.frame, args.requests, args.new_tokens, seed=int(seconds)
                    )
                )
                print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'clip':>6} {'retain':>6} {'prompt':>7} {'TTFT s':>8} {'x full':>7} {'req/s':>8} {'x full':>7}")
    for row in rows:
        full = next(r for r in rows if r["seconds"] == row["seconds"] and r["retain"] == max(args.retain))
        print(
            f"{row['seconds']:>5.0f}s {row['retain']:>6.2f} {row['prompt_tokens']:>7d} {row['ttft_s']:>8.2f} "
            f"{row['ttft_s'] / full['ttft_s']:>7.2f} {row['requests_per_s']:>8.3f} "
            f"{row['requests_per_s'] / full['requests_per_s']:>7.2f}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "rows": rows}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
