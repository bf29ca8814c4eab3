"""Training runs you can trust (issue 13): no pickles, no silent overwrite or setting change, exact
resume or a clear fallback, a clean log, and bad videos skipped within a limit."""

import json
import math
import pickle

import pytest
import torch

from omnisift.models.qwen2_5_omni.fixtures import tiny_thinker
from omnisift.training import TrainConfig, latest_checkpoint, train
from omnisift.training.data import DataError, load_examples
from omnisift.training.state import CheckpointError

COMMON = dict(model="tiny", steps=3, lr=1e-3, warmup_ratio=0.0, progress=False)


def _train(media, out, dataset, processor, **overrides):
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)  # each call builds its own Accelerator
    GradientState._reset_state()
    config = TrainConfig(**{**COMMON, "data": media / "data.jsonl", "out": out, **overrides})
    return train(config, model=tiny_thinker(seed=0), processor=processor, dataset=dataset)


def _log_steps(out):
    return [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]


class _Payload:
    """Unpickling this creates a file: proof that a checkpoint pickle was executed."""

    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


def test_checkpoints_hold_no_pickles_and_resume_never_unpickles(
    media, tmp_path, cached, processor, monkeypatch, caplog
):
    out = tmp_path / "run"
    _train(media, out, cached, processor, stop_after=2)
    checkpoint = latest_checkpoint(out)
    assert all(p.suffix in (".safetensors", ".json") for p in checkpoint.iterdir())
    proof = tmp_path / "pwned"
    for name in ("custom_checkpoint_0.pkl", "custom_checkpoint_1.pkl", "random_states_0.pkl"):
        (checkpoint / name).write_bytes(pickle.dumps(_Payload(proof)))

    def refuse(*args, **kwargs):
        raise AssertionError("a checkpoint was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    caplog.set_level("INFO")
    result = _train(media, out, cached, processor, resume=True)
    assert result.step == 3 and result.resumed_from == checkpoint and not proof.exists()
    assert f"{checkpoint / 'model.safetensors'}" in caplog.text  # says which files it loaded
    assert f"{checkpoint / 'rng-0.safetensors'}" in caplog.text


def test_non_empty_out_of_another_run_is_refused_unless_overwrite(media, tmp_path, cached, processor):
    out = tmp_path / "run"
    _train(media, out, cached, processor, steps=2)
    import shutil

    shutil.rmtree(out / "checkpoints")  # a finished run whose checkpoints were cleaned up
    selector = (out / "selector.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="not empty.*--overwrite"):
        _train(media, out, cached, processor, lr=5e-4)
    assert (out / "selector.safetensors").read_bytes() == selector
    assert json.loads((out / "train_config.json").read_text())["lr"] == 1e-3
    _train(media, out, cached, processor, lr=5e-4, overwrite=True)
    assert _log_steps(out) == [1, 2, 3]  # the old run's log is gone, not appended to
    assert json.loads((out / "train_config.json").read_text())["lr"] == 5e-4


@pytest.mark.parametrize(
    "change",
    [{"lr": 2e-3}, {"weight_decay": 0.1}, {"max_grad_norm": 0.5}, {"max_length": 10_000}, {"bf16": True}],
)
def test_resume_with_a_changed_setting_is_refused(change, media, tmp_path, cached, processor):
    out = tmp_path / "run"
    _train(media, out, cached, processor, stop_after=2)
    with pytest.raises(
        ValueError, match=rf"changed settings \({next(iter(change))} .*--allow-changed-settings"
    ):
        _train(media, out, cached, processor, resume=True, **change)


def test_allowed_changed_lr_is_applied_and_recorded(media, tmp_path, cached, processor):
    out = tmp_path / "run"
    _train(media, out, cached, processor, stop_after=2)
    second = _train(
        media, out, cached, processor, resume=True, lr=2e-3, weight_decay=0.1, allow_changed_settings=True
    )
    cosine_at_2_of_3 = 0.5 * (1 + math.cos(math.pi * 2 / 3))
    assert second.records[0]["lr"] == pytest.approx(2e-3 * cosine_at_2_of_3)
    recorded = json.loads((out / "train_config.json").read_text())
    assert recorded["lr"] == 2e-3 and recorded["weight_decay"] == 0.1
    assert recorded["setting_changes"] == [
        {"at_step": 2, "changed": {"lr": [1e-3, 2e-3], "weight_decay": [0.0, 0.1]}}
    ]
    state = json.loads((latest_checkpoint(out) / "trainer_state.json").read_text())
    assert state["config"]["lr"] == 2e-3


def test_missing_rng_state_is_an_error(media, tmp_path, cached, processor):
    out = tmp_path / "run"
    _train(media, out, cached, processor, stop_after=2)
    for path in latest_checkpoint(out).iterdir():
        if path.name.startswith(("rng", "random_states")):
            path.unlink()
    with pytest.raises(CheckpointError, match=r"rng-0\.\w+ is missing: an exact resume needs"):
        _train(media, out, cached, processor, resume=True)


@pytest.mark.parametrize("damage", ["truncate model", "zero optimizer"])
def test_broken_newest_checkpoint_falls_back_to_the_previous_and_says_so(
    damage, media, tmp_path, cached, processor, caplog
):
    full = _train(media, tmp_path / "full", cached, processor)
    out = tmp_path / "cut"
    _train(media, out, cached, processor, stop_after=2, save_every=1)
    newest = latest_checkpoint(out)
    if damage == "truncate model":
        path = newest / "model.safetensors"
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path = newest / "optimizer.safetensors"
        path.write_bytes(bytes(path.stat().st_size))
    result = _train(media, out, cached, processor, resume=True)
    assert result.resumed_from.name == "step-0000001"
    assert f"checkpoint {newest} is broken" in caplog.text and str(path) in caplog.text
    assert "falling back to the previous one" in caplog.text
    assert result.losses == full.losses[1:]  # still an exact resume, from one step earlier
    assert _log_steps(out) == [1, 2, 3]


def test_log_has_each_step_once_after_a_kill_and_resume(media, tmp_path, cached, processor):
    out = tmp_path / "run"
    _train(media, out, cached, processor, steps=4, save_every=2, stop_after=3)
    import shutil

    shutil.rmtree(latest_checkpoint(out))  # killed after logging step 3, before its checkpoint
    with (out / "train_log.jsonl").open("a") as handle:
        handle.write('{"step": 4, "lo')  # and in the middle of a line
    _train(media, out, cached, processor, steps=4, save_every=2, resume=True)
    assert _log_steps(out) == [1, 2, 3, 4]


def test_corrupt_video_mid_training_is_skipped_and_counted_up_to_a_limit(media, tmp_path, processor, caplog):
    root = tmp_path / "media"
    root.mkdir()
    (root / "good.mp4").write_bytes((media / "clip0.mp4").read_bytes())
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 64)
    turns = [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "A tone."}]
    data = tmp_path / "data.jsonl"
    data.write_text(
        "".join(json.dumps({"video": v, "conversations": turns}) + "\n" for v in ("good.mp4", "broken.mp4"))
    )
    base = dict(COMMON, data=data, media_root=root, steps=2, num_workers=0)
    result = train(TrainConfig(**base, out=tmp_path / "a"), model=tiny_thinker(seed=0), processor=processor)
    assert result.step == 2 and sum(r["bad_samples"] for r in result.records) == 1
    assert "broken.mp4" in caplog.text
    with pytest.raises(DataError, match=r"1 unreadable samples .*--max-bad-samples 0"):
        train(
            TrainConfig(**base, out=tmp_path / "b", max_bad_samples=0),
            model=tiny_thinker(seed=0),
            processor=processor,
        )


def test_training_media_paths_must_stay_under_the_media_root(tmp_path):
    turns = [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]
    for video in ("../outside.mp4", "/etc/hostname"):
        data = tmp_path / "d.jsonl"
        data.write_text(json.dumps({"video": video, "conversations": turns}) + "\n")
        with pytest.raises(DataError, match=rf"{data}:1: video path .* absolute or contains '\.\.'"):
            load_examples(data, tmp_path)
