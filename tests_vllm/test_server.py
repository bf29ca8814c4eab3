"""The OpenAI-compatible server answers a chat request with a video (and its audio) as offline `LLM.chat` does."""

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

import cases
import pytest
import tiny

from conftest import Engine
from omnisift.testing.clips import make_clip
from omnisift.vllm import engine_args, request_kwargs, serve_args

MM = {"fps": 2.0, "min_pixels": tiny.MIN_PIXELS, "max_pixels": tiny.MAX_PIXELS}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _messages(url: str) -> list[dict]:
    return [
        {
            "role": "user",
            "content": [
                {"type": "video_url", "video_url": {"url": url}},
                {"type": "text", "text": cases.QUESTION},
            ],
        }
    ]


@pytest.fixture(scope="module")
def video_url(tmp_path_factory) -> str:
    clip = make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", 4, fps=4.0)
    return "data:video/mp4;base64," + base64.b64encode(clip.read_bytes()).decode()


def _post(port: int, body: dict) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/chat/completions",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    try:
        return json.loads(urllib.request.urlopen(request, timeout=300).read())
    except urllib.error.HTTPError as error:  # show the server's reason
        raise AssertionError(error.read().decode()[:2000]) from error


def test_server_chat_with_video_equals_offline(reference_dir, video_url, tmp_path):
    config = cases.CASES["drops"].config(reference_dir / "selector.safetensors")
    model = str(reference_dir / "model")
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        model,
        "--port",
        str(port),
    ]
    command += ["--dtype", "float32", "--enforce-eager", "--max-model-len", "4096", "--seed", "0"]
    command += ["--gpu-memory-utilization", "0.2", "--kv-cache-memory-bytes", str(256 << 20)]
    command += ["--limit-mm-per-prompt", json.dumps({"video": 1, "audio": 1}), "--trust-request-mm-kwargs"]
    command += serve_args(config)
    log = tmp_path / "server.log"
    with log.open("w") as out:
        env = {k: v for k, v in os.environ.items() if k != "VLLM_ENABLE_V1_MULTIPROCESSING"}
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        mm = request_kwargs(retain=0.25, **MM)
        body = {"model": model, "messages": _messages(video_url), "max_tokens": cases.NEW_TOKENS}
        body.update(temperature=0, mm_processor_kwargs=mm, return_token_ids=True)
        served = _post(port, body)["choices"][0]["token_ids"]
    finally:
        server.terminate()
        server.wait(60)

    from vllm import SamplingParams

    engine = Engine(reference_dir / "model", **engine_args(config))
    try:
        params = SamplingParams(max_tokens=cases.NEW_TOKENS, temperature=0)
        offline = engine.llm.chat(_messages(video_url), params, mm_processor_kwargs=mm, use_tqdm=False)
    finally:
        engine.close()
    assert served == list(offline[0].outputs[0].token_ids)
    assert len(served) == cases.NEW_TOKENS
