"""Fixtures of the vLLM tests (run in .venv-vllm only: `bash scripts/test_vllm.sh`).

The references come from the project's own environment (transformers 5.23, omnisift.attach) through
`reference.py`, run once per session in a subprocess with OMNISIFT_REFERENCE_PYTHON (default
.venv/bin/python). The parity engines run in-process and eager (VLLM_ENABLE_V1_MULTIPROCESSING=0) so tests
can read the positions the language model receives; test_server.py starts its engines with vLLM's defaults.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory) -> Path:
    """Built once per session; OMNISIFT_VLLM_REFERENCES=DIR reuses a folder reference.py already wrote."""
    reuse = os.environ.get("OMNISIFT_VLLM_REFERENCES")
    if reuse and (Path(reuse) / "references.json").is_file():
        return Path(reuse)
    out = tmp_path_factory.mktemp("reference")
    python = os.environ.get("OMNISIFT_REFERENCE_PYTHON", str(ROOT / ".venv" / "bin" / "python"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    subprocess.run([python, str(Path(__file__).parent / "reference.py"), str(out)], check=True, env=env)
    return out


@pytest.fixture(scope="session")
def references(reference_dir) -> dict:
    return json.loads((reference_dir / "references.json").read_text())


class Engine:
    """One in-process vLLM engine on the tiny checkpoint, recording the positions its LM receives."""

    def __init__(self, model: Path, **kwargs) -> None:
        from vllm import LLM

        options = dict(
            dtype="float32",
            enforce_eager=True,
            max_model_len=4096,
            seed=0,
            limit_mm_per_prompt={"video": 2, "audio": 2, "image": 1},
            max_num_seqs=4,
            gpu_memory_utilization=0.2,
            kv_cache_memory_bytes=256 << 20,
        )
        options.update(kwargs)
        self.llm = LLM(model=str(model), **options)
        self.llm.apply_model(_record_positions)

    def run(self, requests: list[dict]) -> list[list[int]]:
        import cases
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=cases.NEW_TOKENS, temperature=0)
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [list(o.outputs[0].token_ids) for o in outputs]

    def prompt_ids(self, requests: list[dict]) -> list[list[int]]:
        """Run the requests; the prompt token ids vLLM laid out (placeholders included)."""
        from vllm import SamplingParams

        outputs = self.llm.generate(requests, SamplingParams(max_tokens=1, temperature=0), use_tqdm=False)
        return [list(o.prompt_token_ids) for o in outputs]

    def positions(self):
        """Positions of every forward since the last call ([3, T] each), then cleared."""
        return self.llm.apply_model(_take_positions)[0]

    def close(self) -> None:
        del self.llm
        gc.collect()


def _record_positions(model) -> None:
    # vLLM's compiled-model wrapper bypasses module hooks: wrap the language model's forward instead.
    model._omnisift_seen = []
    language_model = model.language_model.model
    original = language_model.forward

    def forward(input_ids, positions, *args, **kwargs):
        model._omnisift_seen.append(positions.clone())
        return original(input_ids, positions, *args, **kwargs)

    language_model.forward = forward


def _take_positions(model):
    seen, model._omnisift_seen = model._omnisift_seen, []
    return seen


def request(case, **mm_kwargs) -> dict:
    """The vLLM request of a parity case (video frames with their audio, the case's fps)."""
    import cases
    import tiny

    clips = [tiny.clip(c.seconds, c.fps, c.seed) for c in case.clips]
    data = {"video": [f for f, _ in clips]}
    if case.audio:
        data["audio"] = [a for _, a in clips]
    if case.image:
        data["image"] = [tiny.image(0)]
    return {
        "prompt": cases.chat_text(len(clips), case.question, case.image),
        "multi_modal_data": data,
        "mm_processor_kwargs": {
            "use_audio_in_video": case.audio,
            "fps": case.clips[0].fps,
            "min_pixels": tiny.MIN_PIXELS,
            "max_pixels": tiny.MAX_PIXELS,
            **mm_kwargs,
        },
    }
