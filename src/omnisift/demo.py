"""The demo: one clip through the model with and without compression, side by side.

By default everything is made here: a tiny random-weight model (`--model tiny`), a random selector and a
generated clip (a moving square and a tone). Outputs of random weights are gibberish by design: the
demo shows the mechanics (tokens kept, time, memory), not answer quality. With `--model` and
`--video` the same runs on a real checkpoint and video.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from ._extras import MissingExtraError, require
from .attach import attach
from .budget import BudgetSettings
from .config import DEFAULT_AUDIO_DROP, DEFAULT_VIDEO_DROP, CompressionConfig
from .gain import GainReport, format_gain, measure_gain
from .inputs import prepare_inputs
from .loading import LoadedModel, load_model
from .measure import measure
from .models import find_adapter
from .output_paths import check_output_file
from .selector import RANDOM_SELECTOR, source_selector

__all__ = ["DemoRun", "run_demo", "format_demo"]

logger = logging.getLogger(__name__)

GAIN_CLIP_SECONDS = 4.0
"""Length of the 224 x 224 clip timed on the 7B-shaped thinker (about 420 tokens: seconds per prefill)."""


@dataclass
class DemoRun:
    label: str
    video: str
    rows: list[dict[str, object]]
    outputs: dict[str, str]
    random_weights: bool
    gain: GainReport | None = None
    """The same retains on a 7B-shaped thinker (random-weight demo only: the tiny model cannot show it)."""
    picture: str | None = None
    """Where `omnisift show` drew what was kept of the clip."""


def _load(model: str, selector_path: str | None, device: str, dtype: torch.dtype):
    """The loaded model, its selector (module or None) and whether the weights are random."""
    loaded = load_model(model, dtype=dtype, device=device)
    loaded.thinker.eval()
    hidden = loaded.thinker.config.text_config.hidden_size
    if loaded.random_weights:
        selector = source_selector(RANDOM_SELECTOR, hidden_size=hidden, seed=0).eval()
        return loaded, selector, True
    source = selector_path or loaded.selector_source
    if source is None:
        logger.warning(
            "%s holds no selector: audio is kept whole and each --retain value is the fraction of video tokens "
            "kept (video-only pruning); pass --selector to compress audio too",
            model,
        )
        return loaded, None, False
    return loaded, source_selector(source, hidden_size=hidden), False


def run_demo(
    model_path: str = "tiny",
    video_path: str | None = None,
    *,
    selector_path: str | None = None,
    retain: list[float] | None = None,
    seconds: float = 20.0,
    max_new_tokens: int = 16,
    prompt: str = "What happens in this video, and what do you hear?",
    device: str = "cpu",
    dtype: torch.dtype = torch.float32,
    gain: bool = True,
    picture: str | Path | None = None,
) -> DemoRun:
    """Run the clip at full tokens and at each `retain`, measuring prefill time, peak memory and output.

    With random weights and `gain`, the same retains are also timed on a 7B-shaped thinker
    (`omnisift.gain`); with `picture`, `omnisift show` draws what omnisift and random keep of the clip at
    the first retain into that PNG.
    """
    require("av", "media")  # the clip is written and read with PyAV: say so before the model loads
    settings: list[float] = [1.0, *(retain or [0.35, 0.25])]
    for target in settings:  # the config's message for a bad retain (1.5, nan, inf), before the model loads
        BudgetSettings(DEFAULT_VIDEO_DROP, DEFAULT_AUDIO_DROP, target)
    if picture is not None:
        check_output_file(picture, "--picture")  # before the runs, not when the picture is drawn last
    loaded, selector, random_weights = _load(model_path, selector_path, device, dtype)
    with tempfile.TemporaryDirectory(prefix="omnisift-demo-") as workdir:  # generated clips go with it
        return _run(
            loaded,
            selector,
            random_weights,
            model_path=model_path,
            video_path=video_path,
            workdir=Path(workdir),
            settings=settings,
            seconds=seconds,
            max_new_tokens=max_new_tokens,
            prompt=prompt,
            device=device,
            gain=gain,
            picture=picture,
        )


def _run(
    loaded: LoadedModel,
    selector: torch.nn.Module | None,
    random_weights: bool,
    *,
    model_path: str,
    video_path: str | None,
    workdir: Path,
    settings: list[float],
    seconds: float,
    max_new_tokens: int,
    prompt: str,
    device: str,
    gain: bool,
    picture: str | Path | None,
) -> DemoRun:
    """`run_demo` once the model is loaded, with `workdir` for the generated clips."""
    from .testing.clips import make_clip

    thinker, processor = loaded.thinker, loaded.processor
    clip = Path(video_path) if video_path else make_clip(workdir / "clip.mp4", seconds, fps=2.0)
    video_label = str(clip) if video_path else f"generated clip ({seconds:g} s: a moving square and a tone)"
    token_ids = find_adapter(thinker).token_ids
    # The road `omnisift eval` takes (omnisift.inputs): the paper's protocol, a fixture's small frames.
    inputs = prepare_inputs(model_path, clip, prompt, processor=processor).to(device)
    outputs: dict[str, str] = {}
    rows: list[dict[str, object]] = []

    def prefill():
        with torch.no_grad():
            return thinker(**inputs)

    def answer() -> str:
        with torch.no_grad():
            ids = thinker.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = ids[0, inputs["input_ids"].shape[1] :]
        text = processor.batch_decode(new.unsqueeze(0), skip_special_tokens=True)[0]
        return text if text.strip() else f"(no printable text) token ids {new.tolist()}"

    for target in settings:
        handle = None
        if target == 1.0:
            label = "full tokens"
        elif selector is not None:
            label = f"retain {target:.2f}"
            config = CompressionConfig(retain=target, audio_drop=DEFAULT_AUDIO_DROP, selector=selector)
            handle = attach(thinker, config)
        else:  # no selector: the announced video-only pruning, `target` of the video tokens kept
            label = f"video {target:.2f}"
            handle = attach(thinker, CompressionConfig(video_drop=1.0 - target, audio_drop=0.0))
        try:
            prefill()  # warm-up
            timing = measure(prefill, device=device)
            outputs[label] = answer()
            stats = handle.last_stats[0] if handle is not None else None
        finally:
            if handle is not None:
                handle.remove()
        video_tokens = int((inputs["input_ids"] == token_ids.video).sum())
        audio_tokens = int((inputs["input_ids"] == token_ids.audio).sum())
        rows.append(
            {
                "setting": label,
                "video": f"{video_tokens} -> {stats.video_after}" if stats else str(video_tokens),
                "audio": f"{audio_tokens} -> {stats.audio_after}" if stats else str(audio_tokens),
                "sequence": (
                    f"{stats.length_before} -> {stats.length_after}"
                    if stats
                    else str(inputs["input_ids"].shape[1])
                ),
                "retained": stats.retained if stats else 1.0,
                "prefill_ms": timing.seconds * 1e3,
                "peak_mib": timing.peak_bytes / 2**20,
            }
        )
    family = find_adapter(thinker).family
    label = f"{model_path}: random-weight {family} + random selector" if random_weights else str(model_path)
    targets = settings[1:]
    report = None
    if gain and random_weights and targets:
        gain_clip = make_clip(workdir / "gain_clip.mp4", GAIN_CLIP_SECONDS, fps=2.0, size=(224, 224))
        report = measure_gain(gain_clip, targets)
    drawn = None
    if picture is not None and targets:
        from .visualize import show

        # The budget of the table's first compressed row: retain with a selector, else video-only.
        budget = (
            {"retain": targets[0], "audio_drop": DEFAULT_AUDIO_DROP}
            if selector is not None
            else {"retain": None, "video_drop": 1.0 - targets[0], "audio_drop": 0.0}
        )
        try:
            drawn = show(
                clip, picture, model=loaded, methods=("omnisift", "random"), selector=selector, **budget
            )
        except MissingExtraError as error:
            logger.warning("no picture of the kept tokens: %s", error)
    return DemoRun(
        label=label,
        video=video_label,
        rows=rows,
        outputs=outputs,
        random_weights=random_weights,
        gain=report,
        picture=str(drawn.path) if drawn is not None else None,
    )


def format_demo(run: DemoRun) -> str:
    """A plain-text table of the demo run."""
    lines = [f"model: {run.label}", f"video: {run.video}"]
    if run.random_weights:
        lines.append(
            "NOTE: random weights and a generated clip: outputs are meaningless; compare the numbers."
        )
    header = f"{'setting':<13} {'video tokens':>14} {'audio tokens':>14} {'sequence':>12} {'kept A+V':>9} "
    header += f"{'prefill ms':>11} {'peak MiB':>9}"
    lines += ["", header, "-" * len(header)]
    for row in run.rows:
        lines.append(
            f"{row['setting']:<13} {row['video']:>14} {row['audio']:>14} {row['sequence']:>12} "
            f"{row['retained']:>8.1%} {row['prefill_ms']:>11.1f} {row['peak_mib']:>9.1f}"
        )
    lines.append("")
    for label, text in run.outputs.items():
        lines.append(f"output ({label}): {text!r}")
    if run.gain is not None:
        lines += ["", format_gain(run.gain)]
    if run.picture is not None:
        lines += ["", f"picture of what was kept (omnisift show): {run.picture}"]
    return "\n".join(lines)
