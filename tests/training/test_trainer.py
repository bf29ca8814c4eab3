import argparse
import json

import pytest
import torch
from training_helpers import snapshot

from omnisift import CompressionConfig, VisionGuidedAudioSelector, attach, load_pretrained, load_selector
from omnisift.models.qwen2_5_omni.fixtures import processor_inputs, tiny_thinker
from omnisift.training import TrainConfig, latest_checkpoint, train
from omnisift.training.cli import register


def _config(media, tmp_path, **overrides):
    values = dict(
        data=media / "data.jsonl",
        out=tmp_path / "run",
        model="tiny",
        steps=2,
        warmup_ratio=0.0,
        progress=False,
    )
    values.update(overrides)
    return TrainConfig(**values)


def _initial_selector(seed=0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return VisionGuidedAudioSelector(32)


def _changed(before, after, prefix):
    return {k: not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)}


def test_selector_recipe_changes_the_selector_only(media, tmp_path, cached, processor):
    thinker = tiny_thinker(seed=0)
    before = snapshot(thinker)
    result = train(_config(media, tmp_path, lr=1e-3), model=thinker, processor=processor, dataset=cached)
    assert result.step == 2 and len(result.records) == 2
    assert all(torch.isfinite(torch.tensor(r["loss"])) and 0 < r["retained"] < 1 for r in result.records)
    after = snapshot(thinker)
    assert all(torch.equal(before[k], after[k]) for k in before)  # the frozen model did not move
    trained = load_selector(result.selector_path)
    initial = _initial_selector().state_dict()
    assert all(_changed(initial, trained.state_dict(), "").values())
    assert not thinker._forward_pre_hooks and not thinker.model.language_model._forward_pre_hooks  # detached


def test_full_recipe_changes_the_llm_not_the_encoders_and_exports_a_loadable_model(
    media, tmp_path, cached, processor
):
    thinker = tiny_thinker(seed=0)
    before = snapshot(thinker)
    result = train(
        _config(media, tmp_path, recipe="full", lr=1e-3), model=thinker, processor=processor, dataset=cached
    )
    after = snapshot(thinker)
    assert all(_changed(before, after, "model.language_model.layers.").values())
    assert all(_changed(before, after, "model.language_model.norm.").values())
    assert all(_changed(before, after, "lm_head.").values())
    assert _changed(before, after, "model.language_model.embed_tokens.")[
        "model.language_model.embed_tokens.weight"
    ]
    assert not any(_changed(before, after, "model.visual.").values())  # vision encoder and merger (aligner)
    assert not any(_changed(before, after, "model.audio_tower.").values())
    # The export is laid out like the released OmniSIFT checkpoint.
    loaded, handle = load_pretrained(result.final_dir)
    handle.remove()
    exported = loaded.state_dict()
    assert all(torch.equal(exported[k], after[k]) for k in after)
    selector = load_selector(result.final_dir)
    assert all(
        torch.equal(v, load_selector(result.selector_path).state_dict()[k])
        for k, v in selector.state_dict().items()
    )


def test_resume_continues_exactly_like_an_uninterrupted_run(media, tmp_path, cached, processor):
    common = dict(steps=3, grad_accum=2, batch_size=1, lr=1e-3, warmup_ratio=0.34)
    full = train(
        _config(media, tmp_path, out=tmp_path / "full", **common),
        model=tiny_thinker(seed=0),
        processor=processor,
        dataset=cached,
    )
    first = train(
        _config(media, tmp_path, out=tmp_path / "cut", stop_after=2, **common),
        model=tiny_thinker(seed=0),
        processor=processor,
        dataset=cached,
    )
    assert first.step == 2 and latest_checkpoint(tmp_path / "cut").name == "step-0000002"
    with pytest.raises(FileExistsError, match="--resume"):
        train(
            _config(media, tmp_path, out=tmp_path / "cut", **common),
            model=tiny_thinker(seed=0),
            dataset=cached,
        )
    second = train(
        _config(media, tmp_path, out=tmp_path / "cut", resume=True, **common),
        model=tiny_thinker(seed=0),
        processor=processor,
        dataset=cached,
    )
    assert second.resumed_from.name == "step-0000002" and second.step == 3
    # Tolerance: none. Same weights, optimizer moments, scheduler, RNG and data order give the same bits.
    assert first.losses + second.losses == full.losses
    assert [r["lr"] for r in first.records + second.records] == [r["lr"] for r in full.records]
    a, b = load_selector(full.selector_path).state_dict(), load_selector(second.selector_path).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = [json.loads(line) for line in (tmp_path / "cut" / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    with pytest.raises(ValueError, match="other settings for batch_size"):
        train(
            _config(media, tmp_path, out=tmp_path / "cut", resume=True, **{**common, "batch_size": 2}),
            model=tiny_thinker(seed=0),
            processor=processor,
            dataset=cached,
        )


def test_no_trainable_parameters_and_missing_media_are_clear_errors(media, tmp_path, cached, processor):
    with pytest.raises(ValueError, match="no trainable parameters in use.*--audio-drop"):
        train(
            _config(media, tmp_path, compression=CompressionConfig(audio_drop=0.0)),
            model=tiny_thinker(seed=0),
            processor=processor,
            dataset=cached,
        )
    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps(
            {
                "video": "nowhere.mp4",
                "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}],
            }
        )
        + "\n"
    )
    with pytest.raises(FileNotFoundError, match="1 of 1 training rows.*nowhere.mp4"):
        train(_config(media, tmp_path, data=data))
    with pytest.raises(ValueError, match="recipe must be one of"):
        _config(media, tmp_path, recipe="lora")
    with pytest.raises(ValueError, match="audio_drop must be"):
        _config(media, tmp_path, compression=CompressionConfig(audio_drop=1.0))


def _parse(argv):
    parser = argparse.ArgumentParser(prog="omnisift")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_trains_a_selector_that_loads_for_inference(media, tmp_path, capsys):
    out = tmp_path / "cli"
    argv = [
        "train",
        "--data",
        str(media / "data.jsonl"),
        "--model",
        "tiny",
        "--out",
        str(out),
        "--steps",
        "1",
    ]
    argv += ["--num-workers", "0", "--no-progress", "--retain", "0.4", "--seed", "3", "--lr", "1e-4"]
    args = _parse(argv)
    assert (args.recipe, args.batch_size, args.grad_accum, args.bf16) == ("selector", 1, 1, False)
    assert args.func(args) == 0
    assert "step 1/1" in capsys.readouterr().out
    path = out / "selector.safetensors"
    assert load_selector(path).hidden_size == 32
    thinker = tiny_thinker(seed=0)
    with attach(thinker, CompressionConfig(selector=path, retain=0.4)) as handle:
        inputs = processor_inputs(handle_processor(), [media / "clip0.mp4"], "What?")
        thinker(**inputs, use_audio_in_video=True)
        assert handle.last_stats[0].retained <= 0.4
    args = _parse(argv + ["--resume"])  # already finished: nothing to do
    assert args.func(args) == 0


def handle_processor():
    from omnisift.models.qwen2_5_omni.fixtures import tiny_processor

    return tiny_processor()


@pytest.mark.slow
def test_two_process_data_parallel_matches_gradient_accumulation(media, tmp_path):
    """torchrun with 2 CPU processes (gloo) x batch 1 sees the same samples per step as one process with
    --grad-accum 2, so losses and weights agree up to the order of the gradient reduction."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    base = ["train", "--data", str(media / "data.jsonl"), "--model", "tiny", "--steps", "3", "--lr", "1e-3"]
    base += ["--num-workers", "0", "--no-progress", "--save-every", "2"]
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    subprocess.run(
        [torchrun, "--nproc_per_node", "2", "-m", "omnisift.training", *base, "--out", str(tmp_path / "dp")],
        check=True,
        env=env,
        capture_output=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "omnisift.training",
            *base,
            "--out",
            str(tmp_path / "ga"),
            "--grad-accum",
            "2",
        ],
        check=True,
        env=env,
        capture_output=True,
    )
    logs = [
        [json.loads(x) for x in (tmp_path / d / "train_log.jsonl").read_text().splitlines()]
        for d in ("dp", "ga")
    ]
    for a, b in zip(*logs, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a["lr"] == b["lr"]
    a = load_selector(tmp_path / "dp" / "selector.safetensors").state_dict()
    b = load_selector(tmp_path / "ga" / "selector.safetensors").state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)
