"""Requests/s, TTFT p50/p99 and tokens/s through vLLM at 1, 4 and 16 concurrent requests, retain 1.0 /
0.35 / 0.25, for Qwen2.5-Omni and Qwen3-Omni-MoE side by side in one run.

Each family is a random-weight thinker (vLLM's dummy loader) with the released text shape (Qwen2.5-Omni-7B:
hidden 3584, 28 heads / 4 KV heads, MLP 18944; Qwen3-Omni-30B-A3B: hidden 2048, 32 heads / 4 KV heads,
128 experts, 8 per token, expert MLP 768) and `--layers` decoder layers, small random encoders (their cost
does not depend on retain), the omnisift method with a random selector, and noisy clips with their audio
at 2 fps. One engine per family (vLLM's default options: compiled model, engine core in its own process,
through `AsyncLLM` as the OpenAI server uses it); every request names its retain
(`omnisift.vllm.request_kwargs`). A concurrency level runs max(level, --min-requests) requests with at most
`level` in flight (a new one starts when one finishes; level 1 is sequential); TTFT is per request, from
submission to its first token (queueing behind the level's other requests included). Prefix and
multimodal caches are off so every request pays its full prefill. Run in .venv-vllm:

    .venv-vllm/bin/python benchmarks/vllm_throughput.py --seconds 6 --out results/vllm_concurrency.json

Per-layer prefill cost is the same in every layer, so layer-bound times scale with the layer count; the
ratios are what compression changes, the absolute numbers hold for this machine and depth only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests_vllm"))  # noisy clip writer

import tiny  # noqa: E402
import torch  # noqa: E402

from omnisift import CompressionConfig  # noqa: E402
from omnisift.selector import VisionGuidedAudioSelector, save_selector  # noqa: E402
from omnisift.vllm import engine_args, request_kwargs  # noqa: E402

FAMILIES = ("qwen2.5", "qwen3")
PROMPTS = {
    "qwen2.5": "<|im_start|>user\n<|vision_bos|><|VIDEO|><|vision_eos|>What happens in this video?<|im_end|>\n"
    "<|im_start|>assistant\n",
    "qwen3": "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>What happens in this video?<|im_end|>\n"
    "<|im_start|>assistant\n",
}


def _save_selector(folder: Path, hidden: int) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        save_selector(VisionGuidedAudioSelector(hidden).eval(), folder / "selector.safetensors")


def write_qwen25(folder: Path, layers: int, frame: int) -> Path:
    """config.json (7B text shape, small encoders) and the tiny processor; weights from vLLM's dummy loader."""
    from transformers import Qwen2_5OmniConfig

    from omnisift.models.qwen2_5_omni import fixtures

    hidden = 3584
    config = fixtures.tiny_thinker_config(hidden_size=64, num_layers=layers)
    text = config.text_config
    text.hidden_size, text.intermediate_size = hidden, 18944
    text.num_attention_heads, text.num_key_value_heads, text.head_dim = 28, 4, 128
    text.vocab_size = 152064
    text.rope_parameters = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [16, 24, 24]}
    text.tie_word_embeddings = False
    config.audio_config.output_dim = hidden
    config.vision_config.out_hidden_size = hidden
    full = Qwen2_5OmniConfig(thinker_config=config.to_dict(), enable_audio_output=False)
    full.architectures = ["Qwen2_5OmniForConditionalGeneration"]
    full.save_pretrained(folder)
    fixtures.tiny_processor(min_pixels=frame * frame, max_pixels=frame * frame).save_pretrained(folder)
    _save_selector(folder, hidden)
    return folder


def write_qwen3(folder: Path, layers: int, frame: int) -> Path:
    """config.json (30B-A3B text shape, small encoders) and the tiny processor; dummy-loaded weights."""
    from transformers import Qwen3OmniMoeConfig

    from omnisift.models.qwen3_omni_moe import fixtures
    from omnisift.models.qwen3_omni_moe.adapter import TOKEN_IDS

    hidden = 2048
    config = fixtures.tiny_thinker_config(hidden_size=64, num_layers=layers)
    text = config.text_config
    text.hidden_size, text.intermediate_size, text.moe_intermediate_size = hidden, 6144, 768
    text.num_experts, text.num_experts_per_tok = 128, 8
    text.num_attention_heads, text.num_key_value_heads, text.head_dim = 32, 4, 128
    text.rope_parameters = {
        "rope_type": "default",
        "rope_theta": 1e6,
        "mrope_section": [24, 20, 20],
        "interleaved": True,
        "mrope_interleaved": True,
    }
    text.tie_word_embeddings = False
    config.audio_config.output_dim = hidden
    vision = config.vision_config
    vision.out_hidden_size = hidden
    vision.image_size = int(vision.num_position_embeddings**0.5) * vision.patch_size
    vision.apply_vit_abs_pos_embed = True
    full = Qwen3OmniMoeConfig(thinker_config=config.to_dict(), enable_audio_output=False)
    full.architectures = ["Qwen3OmniMoeForConditionalGeneration"]
    thinker = full.thinker_config
    thinker.vision_start_token_id, thinker.vision_end_token_id = TOKEN_IDS.vision_bos, TOKEN_IDS.vision_eos
    thinker.audio_end_token_id = TOKEN_IDS.audio_eos
    full.save_pretrained(folder)
    fixtures.tiny_processor(min_pixels=frame * frame, max_pixels=frame * frame).save_pretrained(folder)
    _save_selector(folder, hidden)
    return folder


def request(family: str, seconds: float, seed: int, retain: float, frame: int) -> dict:
    frames, audio = tiny.clip(seconds, 2.0, seed, size=frame)
    return {
        "prompt": PROMPTS[family],
        "multi_modal_data": {"video": [frames], "audio": [audio]},
        "mm_processor_kwargs": request_kwargs(
            retain=retain, fps=2.0, min_pixels=frame * frame, max_pixels=frame * frame
        ),
    }


async def _one(engine, prompt: dict, params, request_id: str) -> dict:
    start = time.perf_counter()
    first, out = None, None
    async for out in engine.generate(prompt, params, request_id):
        if first is None and out.outputs and out.outputs[0].token_ids:
            first = time.perf_counter() - start
    return {
        "ttft": first,
        "tokens": len(out.outputs[0].token_ids),
        "prompt_tokens": len(out.prompt_token_ids),
    }


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def sweep(engine, family: str, args, counter: list[int]) -> list[dict]:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=args.new_tokens, temperature=0, ignore_eos=True)

    async def burst(
        retain: float, count: int, seconds: float, seed: int, concurrency: int
    ) -> tuple[list[dict], float]:
        """`count` requests with at most `concurrency` in flight (a new one starts when one finishes)."""
        prompts = [request(family, seconds, seed + i, retain, args.frame) for i in range(count)]
        slots = asyncio.Semaphore(concurrency)

        async def limited(prompt: dict, request_id: str) -> dict:
            async with slots:
                return await _one(engine, prompt, params, request_id)

        start = time.perf_counter()
        tasks = []
        for prompt in prompts:
            counter[0] += 1
            tasks.append(limited(prompt, f"r{counter[0]}"))
        results = await asyncio.gather(*tasks)
        return results, time.perf_counter() - start

    for retain in args.retain:  # warm-up: compiled shapes, the selector's first call
        await burst(retain, 1, 2.0, 999, 1)
    rows = []
    for concurrency in args.concurrency:
        for retain in args.retain:
            results, wall = await burst(
                retain, max(concurrency, args.min_requests), args.seconds, 1000 * concurrency, concurrency
            )
            ttfts = [r["ttft"] for r in results]
            rows.append(
                {
                    "family": family,
                    "concurrency": concurrency,
                    "retain": retain,
                    "requests": len(results),
                    "prompt_tokens": statistics.mean(r["prompt_tokens"] for r in results),
                    "requests_per_s": len(results) / wall,
                    "ttft_p50_s": _percentile(ttfts, 0.5),
                    "ttft_p99_s": _percentile(ttfts, 0.99),
                    "tokens_per_s": sum(r["tokens"] for r in results) / wall,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def run_family(family: str, args, counter: list[int]) -> list[dict]:
    from vllm import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    with tempfile.TemporaryDirectory() as tmp:
        write = write_qwen25 if family == "qwen2.5" else write_qwen3
        folder = write(Path(tmp), args.layers, args.frame)
        config = CompressionConfig(method="omnisift", selector=str(folder / "selector.safetensors"))
        engine = AsyncLLM.from_engine_args(
            AsyncEngineArgs(
                model=str(folder),
                load_format="dummy",
                dtype="bfloat16",
                max_model_len=8192,
                max_num_batched_tokens=8192,
                max_num_seqs=max(args.concurrency),
                enable_prefix_caching=False,
                mm_processor_cache_gb=0,
                limit_mm_per_prompt={"video": 1, "audio": 1},
                kv_cache_memory_bytes=args.kv_cache_gib << 30,
                seed=0,
                disable_log_stats=True,
                **engine_args(config, model=folder),
            )
        )
        try:
            return asyncio.run(sweep(engine, family, args, counter))
        finally:
            engine.shutdown()


def table(rows: list[dict]) -> str:
    """Markdown: one line per (concurrency, retain), the two families side by side, ratios to retain 1.0."""
    head = "| concurrency | retain |"
    rule = "|---:|---:|"
    families = [f for f in FAMILIES if any(r["family"] == f for r in rows)]
    for family in families:
        head += f" {family} prompt | req/s | x full | TTFT p50 s | TTFT p99 s | tok/s |"
        rule += "---:|---:|---:|---:|---:|---:|"
    lines = [head, rule]
    keys = sorted({(r["concurrency"], r["retain"]) for r in rows}, key=lambda k: (k[0], -k[1]))
    for concurrency, retain in keys:
        line = f"| {concurrency} | {retain:.2f} |"
        for family in families:
            row = next(
                r
                for r in rows
                if (r["family"], r["concurrency"], r["retain"]) == (family, concurrency, retain)
            )
            full = max(
                (r for r in rows if r["family"] == family and r["concurrency"] == concurrency),
                key=lambda r: r["retain"],
            )
            line += (
                f" {row['prompt_tokens']:.0f} | {row['requests_per_s']:.3f} | "
                f"{row['requests_per_s'] / full['requests_per_s']:.2f} | {row['ttft_p50_s']:.2f} | "
                f"{row['ttft_p99_s']:.2f} | {row['tokens_per_s']:.2f} |"
            )
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--frame", type=int, default=224, help="frame side in pixels")
    parser.add_argument("--seconds", type=float, default=10.0, help="clip length")
    parser.add_argument("--retain", type=float, nargs="+", default=[1.0, 0.35, 0.25])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--min-requests", type=int, default=2, help="requests per level at least")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--kv-cache-gib", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    counter = [0]
    rows: list[dict] = []
    for family in args.families:
        rows += run_family(family, args, counter)
    print()
    print(table(rows))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"settings": {k: v for k, v in vars(args).items() if k != "out"}, "rows": rows}
        args.out.write_text(json.dumps(payload, indent=2, default=str))


if __name__ == "__main__":
    main()
