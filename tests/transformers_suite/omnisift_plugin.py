"""pytest plugin: attach omnisift to every Qwen2.5-Omni or Qwen3-Omni-MoE model transformers' own tests build.

Loaded into a pytest run of transformers' `tests/models/qwen2_5_omni/test_modeling_qwen2_5_omni.py` or
`tests/models/qwen3_omni_moe/test_modeling_qwen3_omni_moe.py` (see tests/test_transformers_suite.py) with
`-p omnisift_plugin`, `--omnisift-family` (`qwen2_5_omni`, `qwen3_omni_moe`) and two options:

`--omnisift-attach`
    `none`: stock. `zero`: `CompressionConfig(video_drop=0, audio_drop=0)`, which must behave exactly like
    stock. `drop`: method omnisift, `video_drop=0.5, audio_drop=0.5`, with a randomly initialised
    `VisionGuidedAudioSelector` (fixed seed). The tests' models have random weights and a 32-wide hidden
    state, so no trained selector fits them; a random selector still runs the whole omnisift path (STVP on
    the video grids, the selector scoring audio against the kept video, the selector following the model's
    dtype/device) rather than the `random` baseline's single draw.
`--omnisift-inputs`
    `stock`: the tests' own inputs (audio + one image; no video, so even a non-zero budget drops only
    audio). `video-audio`: the audio block becomes a video with its audio (`use_audio_in_video=True`):
    `<vision_bos><audio_bos>` + 8 video tokens (grid 2x2x2, 1 s per grid: one 2 s chunk) + the 7 audio
    tokens + `<audio_eos><vision_eos>`, the image kept. Qwen3-Omni-MoE: the same block with its video and
    audio tokens merge-sorted by t id as its processor lays them (4 video tokens at t 0, the 4 audio tokens at
    t 0..3, 4 video tokens at t 13). Run stock with this variant too: the tests' own expectations about the
    inputs (e.g. batch slicing) are then the same on both sides.

Attaching happens in `post_init` (end of `__init__`), so models built directly, by `from_pretrained` and
by the full model's constructor are all attached; a full model's thinker handle is replaced by one on the
full model, except when the full model has its talker (attach refuses such a model: its thinker stays
attached, as the refusal advises). `--omnisift-report PATH` writes JSON counts (models attached,
prefills compressed, tokens before/after) so a run can show that compression really happened.
"""

from __future__ import annotations

import json
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

_ATTACH_MODES = ("none", "zero", "drop")
_INPUT_MODES = ("stock", "video-audio")
_VIDEO_GRID = (2, 2, 2)
_DROP = {"video_drop": 0.5, "audio_drop": 0.5}
_FAMILIES = {
    "qwen2_5_omni": ("Qwen2_5Omni", "Qwen2_5OmniThinkerForConditionalGenerationTester"),
    "qwen3_omni_moe": ("Qwen3OmniMoe", "Qwen3OmniMoeThinkerForConditionalGenerationTester"),
}
"""Family -> (transformers class-name prefix, the tests' tester class)."""

_handles: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_selectors: dict[int, torch.nn.Module] = {}
_counts: Counter = Counter()
_finalizers: list[weakref.finalize] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("omnisift")
    group.addoption("--omnisift-family", choices=sorted(_FAMILIES), default="qwen2_5_omni")
    group.addoption("--omnisift-attach", choices=_ATTACH_MODES, default="none")
    group.addoption("--omnisift-inputs", choices=_INPUT_MODES, default="stock")
    group.addoption("--omnisift-report", default=None, help="write JSON counts of what was compressed here")


def pytest_configure(config: pytest.Config) -> None:
    mode = config.getoption("--omnisift-attach")
    if mode != "none":
        _patch_post_init(mode, _FAMILIES[config.getoption("--omnisift-family")][0])


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.config.getoption("--omnisift-inputs") == "video-audio":
        _patch_inputs(item, _FAMILIES[item.config.getoption("--omnisift-family")][1])


def pytest_sessionfinish(session: pytest.Session) -> None:
    for finalizer in _finalizers:
        finalizer()  # models still alive: record their stats now
    path = session.config.getoption("--omnisift-report")
    if path:
        Path(path).write_text(json.dumps(dict(_counts), indent=1, sort_keys=True))


# attaching -------------------------------------------------------------------------------------------


def _compression_config(mode: str, hidden_size: int) -> Any:
    from omnisift import CompressionConfig

    if mode == "zero":
        return CompressionConfig(video_drop=0, audio_drop=0)
    return CompressionConfig(method="omnisift", selector=_random_selector(hidden_size), **_DROP)


def _random_selector(hidden_size: int) -> torch.nn.Module:
    """One selector per hidden size, built on CPU (from_pretrained builds models on the meta device) and
    without touching the tests' random state."""
    if hidden_size not in _selectors:
        from omnisift import VisionGuidedAudioSelector

        with torch.random.fork_rng(devices=[]), torch.device("cpu"):
            torch.manual_seed(0)
            _selectors[hidden_size] = VisionGuidedAudioSelector(hidden_size, width=32, heads=4).eval()
    return _selectors[hidden_size]


def _patch_post_init(mode: str, prefix: str) -> None:
    import transformers

    for name in ("ThinkerForConditionalGeneration", "ForConditionalGeneration"):
        cls = getattr(transformers, prefix + name)
        original = cls.post_init

        def post_init(self: torch.nn.Module, _original: Any = original) -> None:
            _original(self)
            _attach(self, mode)

        cls.post_init = post_init


def _attach(model: torch.nn.Module, mode: str) -> None:
    from omnisift import attach

    if model in _handles:
        return  # post_init called again on the same model
    thinker = getattr(model, "thinker", None)
    if getattr(model, "talker", None) is not None:
        # attach refuses a full model with its talker: its thinker stays attached
        _counts["full_models_with_talker_thinker_kept"] += 1
        return
    if thinker is not None and thinker in _handles:
        _handles.pop(thinker).remove()  # the full model's attachment replaces its thinker's
        _counts["thinker_handles_replaced"] += 1
    text_config = (thinker if thinker is not None else model).config.get_text_config()
    handle = attach(model, _compression_config(mode, text_config.hidden_size))
    _handles[model] = handle
    _counts[f"attached_{type(model).__name__}"] += 1
    _finalizers.append(weakref.finalize(model, _record, handle.history))


def _record(history: Any) -> None:
    for call in history:
        _counts["prefills_seen"] += 1
        _counts["prefills_compressed"] += int(call.compressed)
        for sample in call.samples:
            _counts["video_tokens_before"] += sample.video_before
            _counts["video_tokens_after"] += sample.video_after
            _counts["audio_tokens_before"] += sample.audio_before
            _counts["audio_tokens_after"] += sample.audio_after


# the video-with-audio input variant ------------------------------------------------------------------


def _patch_inputs(item: pytest.Item, tester_name: str) -> None:
    tester = getattr(item.module, tester_name, None)
    if tester is None:
        return
    if not getattr(tester, "_omnisift_video_audio", False):
        _patch_tester(tester)
    _patch_generate_inputs(getattr(item, "cls", None))


def _patch_tester(tester: type) -> None:
    common = tester.prepare_config_and_inputs_for_common

    def prepare_config_and_inputs_for_common(self: Any) -> tuple[Any, dict]:
        config, inputs = common(self)
        inputs = _with_video_and_audio(config, inputs)
        self._omnisift_videos = inputs["pixel_values_videos"]
        return config, inputs

    tester.prepare_config_and_inputs_for_common = prepare_config_and_inputs_for_common
    tester._omnisift_video_audio = True


def _patch_generate_inputs(test_class: type | None) -> None:
    generate_inputs = getattr(test_class, "prepare_config_and_inputs_for_generate", None)
    if generate_inputs is None or getattr(test_class, "_omnisift_video_audio", False):
        return

    def prepare_config_and_inputs_for_generate(self: Any, batch_size: int = 2) -> tuple[Any, dict]:
        # the mixin slices every tensor to `batch_size` rows; video patches are rows per video, not per
        # sample: take those of the first `batch_size` videos instead
        config, inputs = generate_inputs(self, batch_size=batch_size)
        per_video = _VIDEO_GRID[0] * _VIDEO_GRID[1] * _VIDEO_GRID[2]
        inputs["pixel_values_videos"] = self.model_tester._omnisift_videos[: batch_size * per_video]
        return config, inputs

    test_class.prepare_config_and_inputs_for_generate = prepare_config_and_inputs_for_generate
    test_class._omnisift_video_audio = True


def _with_video_and_audio(config: Any, inputs: dict) -> dict:
    """The tests' inputs with the audio block turned into a video with its audio (one 2 s chunk)."""
    ids = inputs["input_ids"].clone()
    batch = ids.shape[0]
    audio_tokens = int((ids[0] == config.audio_token_id).sum())
    video_tokens = _VIDEO_GRID[0] * _VIDEO_GRID[1] * _VIDEO_GRID[2]
    ids[ids == config.video_token_id] = config.get_text_config().pad_token_id  # random text held video ids
    block = (
        [config.vision_start_token_id, config.audio_start_token_id]
        + _video_and_audio_order(config, video_tokens, audio_tokens)
        + [config.audio_end_token_id, config.vision_end_token_id]
    )
    ids[:, 1 : 1 + len(block)] = torch.tensor(block, device=ids.device)
    vision = config.vision_config
    patch_dim = 3 * vision.patch_size**2 * vision.temporal_patch_size
    videos = torch.rand(batch * video_tokens, patch_dim, generator=torch.Generator().manual_seed(0))
    return {
        **inputs,
        "input_ids": ids,
        "pixel_values_videos": videos.to(ids.device),
        "video_grid_thw": torch.tensor([_VIDEO_GRID] * batch, device=ids.device),
        "video_second_per_grid": torch.ones(batch, device=ids.device),
        "use_audio_in_video": True,
    }


def _video_and_audio_order(config: Any, video_tokens: int, audio_tokens: int) -> list[int]:
    """The video and audio placeholders of one video with its audio (1 s per grid). Qwen2.5-Omni: one 2 s
    chunk, its video then its audio. Qwen3-Omni-MoE: merge-sorted by t id (a video token first on equal t):
    video t = grid * position_id_per_seconds, audio t = its index."""
    if "Qwen3" not in type(config).__name__:
        return [config.video_token_id] * video_tokens + [config.audio_token_id] * audio_tokens
    per_grid = video_tokens // _VIDEO_GRID[0]
    video_t = [
        grid * config.position_id_per_seconds for grid in range(_VIDEO_GRID[0]) for _ in range(per_grid)
    ]
    keyed = [(t, 0, config.video_token_id) for t in video_t] + [
        (t, 1, config.audio_token_id) for t in range(audio_tokens)
    ]
    return [token for _, _, token in sorted(keyed)]
