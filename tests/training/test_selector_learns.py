"""The selector learns, through the straight-through estimator of the real selection code, to keep the
audio tokens that matter (see `training_task.py` for the synthetic task)."""

import pytest
import torch
import training_task

from omnisift import VisionGuidedAudioSelector


def _run(width: int, steps: int, lr: float, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    selector = VisionGuidedAudioSelector(training_task.HIDDEN, width=width)
    random_recall, random_loss = training_task.evaluate(None, method="random")
    before_recall, before_loss = training_task.evaluate(selector)
    losses = training_task.train_selector(selector, steps, lr=lr, seed=seed)
    after_recall, after_loss = training_task.evaluate(selector)
    report = {
        "random": random_recall,
        "loss_random": random_loss,
        "before": before_recall,
        "after": after_recall,
        "loss_before": before_loss,
        "loss_after": after_loss,
        "train_first": sum(losses[:20]) / 20,
        "train_last": sum(losses[-20:]) / 20,
    }
    print({k: round(v, 3) for k, v in report.items()})
    return report


def _check(report: dict[str, float]) -> None:
    # Keeping 20 of 50 audio tokens per group at random keeps 40 % of the 10 informative ones.
    assert 0.3 < report["random"] < 0.5
    assert report["before"] < 0.6
    assert report["after"] > 0.9
    assert report["after"] > max(report["before"], report["random"]) + 0.35
    assert report["train_last"] < 0.3 * report["train_first"]
    assert report["loss_after"] < 0.3 * min(report["loss_before"], report["loss_random"])


def test_trained_selector_keeps_the_informative_audio_tokens():
    # Width 128 instead of the published 512 only to keep this test fast; the code path is the same.
    _check(_run(width=128, steps=150, lr=1e-3))


@pytest.mark.slow
def test_trained_selector_at_the_published_width():
    _check(_run(width=512, steps=300, lr=3e-4))
