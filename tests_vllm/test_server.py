"""vLLM's default options (compiled model, engine in its own process) and the OpenAI server as users call it.

Both engines here start with nothing but the model, memory limits and `engine_args` / `serve_args`: no
`enforce_eager`, engine multiprocessing on. The engine-wide `max_pixels` is raised so that start-up
profiling picks video as its largest modality and builds a video-only dummy request under the engine-wide
`use_audio_in_video=True` (the crash of issue 22: the HF processor raised StopIteration).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import cases
import pytest
import tiny

from conftest import request
from omnisift.testing.clips import make_clip
from omnisift.vllm import engine_args, request_kwargs, serve_args

PROFILE_MAX_PIXELS = 768 * 784
"""Engine-wide max_pixels: the largest dummy video then has more tokens than a 30 s audio."""
MEMORY = {"max_model_len": 8192, "kv_cache_memory_bytes": 256 << 20, "dtype": "float32", "seed": 0}
LIMITS = {"video": 1, "audio": 1}


@contextmanager
def _default_multiprocessing() -> Iterator[None]:
    """vLLM's default (engine core in its own process), whatever the test session set."""
    saved = os.environ.pop("VLLM_ENABLE_V1_MULTIPROCESSING", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = saved


def _engine_args(config) -> dict:
    args = engine_args(config)
    args["mm_processor_kwargs"]["max_pixels"] = PROFILE_MAX_PIXELS
    return args


@pytest.fixture(scope="module")
def config(reference_dir):
    return cases.CASES["drops"].config(reference_dir / "selector.safetensors")


@pytest.fixture(scope="module")
def offline(reference_dir, config):
    from vllm import LLM

    with _default_multiprocessing():
        llm = LLM(
            model=str(reference_dir / "model"), limit_mm_per_prompt=LIMITS, **MEMORY, **_engine_args(config)
        )
    yield llm
    llm.llm_engine.engine_core.shutdown()
    del llm


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(reference_dir, config, tmp_path_factory):
    """`python -m vllm.entrypoints.openai.api_server MODEL` + serve_args, vLLM's defaults otherwise."""
    model = str(reference_dir / "model")
    port = _free_port()
    args = _engine_args(config)
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--port",
        str(port),
    ]
    command += ["--dtype", "float32", "--max-model-len", "8192", "--seed", "0"]
    command += ["--kv-cache-memory-bytes", str(256 << 20), "--limit-mm-per-prompt", json.dumps(LIMITS)]
    command += ["--trust-request-mm-kwargs"]
    command += serve_args(config)
    command[-1] = json.dumps(args["mm_processor_kwargs"])  # serve_args' own, plus the profiling max_pixels
    log = tmp_path_factory.mktemp("server") / "server.log"
    with log.open("w") as out:
        env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 400
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
                time.sleep(1)
        yield port, model
    finally:
        process.terminate()
        process.wait(60)


@pytest.fixture(scope="module")
def video_url(tmp_path_factory) -> str:
    clip = make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", 4, fps=4.0)
    return "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()


def _messages(url: str) -> list[dict]:
    content = [{"type": "video_url", "video_url": {"url": url}}, {"type": "text", "text": cases.QUESTION}]
    return [{"role": "user", "content": content}]


def _post(port: int, body: dict) -> tuple[int, dict]:
    http = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        return 200, json.loads(urllib.request.urlopen(http, timeout=300).read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode() or "{}")


def _served_tokens(port: int, body: dict) -> list[int]:
    status, answer = _post(port, body)
    assert status == 200, answer
    return answer["choices"][0]["token_ids"]


def _chat_body(model: str, url: str, **extra) -> dict:
    body = {"model": model, "messages": _messages(url), "max_tokens": cases.NEW_TOKENS, "temperature": 0}
    return {**body, "return_token_ids": True, **extra}


def _offline_chat(offline, url: str, **kwargs) -> tuple[list[int], int]:
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=cases.NEW_TOKENS, temperature=0)
    out = offline.chat(_messages(url), params, use_tqdm=False, **kwargs)[0]
    return list(out.outputs[0].token_ids), len(out.prompt_token_ids)


def test_offline_engine_with_default_options_equals_transformers(offline, references):
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=cases.NEW_TOKENS, temperature=0)
    for name in ("drops", "video_only"):
        out = offline.generate([request(cases.CASES[name])], params, use_tqdm=False)
        assert list(out[0].outputs[0].token_ids) == references[name]["attach"], name


def test_chat_request_with_video_url_and_its_audio_track(server, offline, video_url):
    """The README's body: vLLM's chat parser reads a video_url's audio track only when the REQUEST's
    mm_processor_kwargs say use_audio_in_video (the engine-wide setting does not reach it), so the body
    carries `{"use_audio_in_video": true}`; without it the clip goes in as video only."""
    port, model = server
    status, answer = _post(
        port, _chat_body(model, video_url, mm_processor_kwargs={"use_audio_in_video": True})
    )
    assert status == 200, answer
    tokens, prompt_length = _offline_chat(
        offline, video_url, mm_processor_kwargs={"use_audio_in_video": True}
    )
    assert answer["choices"][0]["token_ids"] == tokens
    assert len(tokens) == cases.NEW_TOKENS
    status, plain = _post(port, _chat_body(model, video_url))
    assert status == 200, plain
    assert plain["usage"]["prompt_tokens"] < answer["usage"]["prompt_tokens"] == prompt_length


def test_request_retain_over_the_server_equals_offline(server, offline, video_url):
    port, model = server
    mm = request_kwargs(retain=0.25, fps=2.0, min_pixels=tiny.MIN_PIXELS, max_pixels=tiny.MAX_PIXELS)
    served = _served_tokens(port, _chat_body(model, video_url, mm_processor_kwargs=mm))
    tokens, _ = _offline_chat(offline, video_url, mm_processor_kwargs=mm)
    assert served == tokens


@pytest.mark.parametrize(
    ("mm", "named"),
    [
        ({"omnisift_method": "evs"}, "omnisift_method"),
        ({"retian": 0.3}, "retian"),
        ({"omnisift_retain": "a quarter"}, "omnisift_retain"),
    ],
)
def test_server_refuses_unknown_or_malformed_omnisift_keys(server, video_url, mm, named):
    port, model = server
    status, answer = _post(port, _chat_body(model, video_url, mm_processor_kwargs=mm))
    assert status == 400, answer
    assert named in json.dumps(answer)


def test_qwen3_offline_engine_with_default_options_equals_transformers(reference_dir, references):
    """Qwen3-Omni-MoE under vLLM's defaults: start-up profiling's video-only dummy, compiled model, engine core
    in its own process."""
    from test_qwen3 import request3
    from vllm import LLM, SamplingParams

    model = reference_dir / "qwen3" / "model"
    args = engine_args(
        cases.QWEN3_CASES["drops"].config(reference_dir / "qwen3" / "selector.safetensors"), model=model
    )
    args["mm_processor_kwargs"]["max_pixels"] = PROFILE_MAX_PIXELS
    with _default_multiprocessing():
        llm = LLM(model=str(model), limit_mm_per_prompt=LIMITS, **MEMORY, **args)
    try:
        params = SamplingParams(max_tokens=cases.NEW_TOKENS, temperature=0)
        out = llm.generate([request3(cases.QWEN3_CASES["drops"])], params, use_tqdm=False)
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
    assert list(out[0].outputs[0].token_ids) == references["qwen3"]["drops"]["attach"]
