"""Every registered method through attach + generate on the tiny model, at omnisift's token budget."""

from __future__ import annotations

import pytest
import torch

from omnisift import CompressionConfig, VisionGuidedAudioSelector, attach
from omnisift.inner import InnerLLMMethod
from omnisift.methods import METHODS, available_methods, takes_setting
from omnisift.models.qwen2_5_omni import fixtures as tiny
from omnisift.testing.clips import make_clip

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    thinker = tiny.tiny_thinker(seed=0)
    clips = [make_clip(root / "a.mp4", 6.0), make_clip(root / "b.mp4", 3.0, tone_hz=700)]
    inputs = tiny.processor_inputs(tiny.tiny_processor(), clips, ["What is it?", "Which sound?"])
    torch.manual_seed(0)
    selector = VisionGuidedAudioSelector(thinker.config.text_config.hidden_size).eval()
    with attach(thinker, CompressionConfig(video_drop=0.6, audio_drop=0.3, selector=selector)) as handle:
        with torch.no_grad():
            thinker(**inputs, use_audio_in_video=True)
        reference = handle.last_stats
    return thinker, inputs, selector, reference


@pytest.mark.parametrize(
    "method", [m for m in available_methods() if not issubclass(METHODS[m], InnerLLMMethod)]
)  # inner-LLM methods have their own budget: tests/inner
def test_method_generates_at_omnisift_budget(setup, method: str) -> None:
    thinker, inputs, selector, reference = setup
    shortcuts = {"selector": selector, "seed": 3}
    shortcuts = {k: v for k, v in shortcuts.items() if takes_setting(method, k)}
    config = CompressionConfig(method=method, video_drop=0.6, audio_drop=0.3, **shortcuts)
    with attach(thinker, config) as handle:
        with torch.no_grad():
            out = thinker.generate(**inputs, use_audio_in_video=True, max_new_tokens=3, do_sample=False)
        stats = handle.last_stats
    assert out.shape[1] == inputs["input_ids"].shape[1] + 3
    for got, want in zip(stats, reference):
        assert (got.video_after, got.audio_after) == (want.video_after, want.audio_after), method
        assert got.length_after < got.length_before


def test_omnizip_uses_the_audio_encoder_attention(setup, caplog) -> None:
    thinker, inputs, selector, _ = setup
    config = CompressionConfig(method="omnizip", video_drop=0.6, audio_drop=0.3)
    with caplog.at_level("INFO"), attach(thinker, config) as handle:
        with torch.no_grad():
            thinker(**inputs, use_audio_in_video=True)
        recorder = handle.method._recorder
        assert recorder is not None and recorder.scores is None  # consumed
    assert handle.method._recorder is None  # released by remove()
    assert "proxy" not in caplog.text
