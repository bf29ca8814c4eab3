"""Protocol presets: each paper's protocol in one flag, any single setting overridable, part of the run."""

from __future__ import annotations

import json

import pytest

from omnisift.evaluation.benchmarks import Question
from omnisift.evaluation.cli import main
from omnisift.evaluation.run_identity import describe
from omnisift.evaluation.runner import fallback_choice
from omnisift.inputs import Protocol
from omnisift.protocols import PRESETS, SEATS_SYSTEM_PROMPT, preset_protocol, protocol_label


def _values(protocol: Protocol) -> tuple:
    s = protocol.sampling
    return (
        s.max_pixels,
        s.max_frames,
        s.fps,
        protocol.system_prompt,
        protocol.max_new_tokens,
        protocol.unparsable,
    )


@pytest.mark.parametrize(
    "name,benchmark,want",
    [
        ("omnisift-paper", "worldsense", (256 * 28 * 28, 256, 2.0, None, 1024, "wrong")),
        ("seats", "dailyomni", (144 * 28 * 28, 128, 2.0, SEATS_SYSTEM_PROMPT, 32, "random")),
        ("seats", "worldsense", (144 * 28 * 28, 128, 2.0, SEATS_SYSTEM_PROMPT, 32, "wrong")),
        ("seats", "omnivideobench", (144 * 28 * 28, 256, 2.0, None, 32, "wrong")),
        ("seats", "Video-MME", (144 * 28 * 28, 768, 2.0, None, 32, "wrong")),
        ("omnizip", "videomme", (128 * 28 * 28, 768, 2.0, None, 1024, "wrong")),
        ("vidcom2", "dailyomni", (320 * 28 * 28, 728, 2.0, None, 1024, "wrong")),
    ],
)
def test_each_preset_sets_its_papers_values(name, benchmark, want) -> None:
    assert _values(preset_protocol(name, benchmark)) == want


def test_the_default_is_the_omnisift_papers_protocol() -> None:
    assert preset_protocol() == Protocol()
    assert SEATS_SYSTEM_PROMPT.endswith("select the most appropriate answer from the given options.")


def test_any_single_setting_overrides_the_preset() -> None:
    protocol = preset_protocol("seats", "dailyomni", fps=1.0, max_new_tokens=64, unparsable="wrong")
    assert _values(protocol) == (144 * 28 * 28, 128, 1.0, SEATS_SYSTEM_PROMPT, 64, "wrong")
    assert protocol_label(protocol, "dailyomni") == "seats (fps=1.0, max_new_tokens=64, unparsable=wrong)"
    assert protocol_label(preset_protocol("seats", "dailyomni"), "dailyomni") == "seats"
    with pytest.raises(ValueError, match="protocol='paper' is not allowed: one of omnisift-paper, seats"):
        preset_protocol("paper")
    with pytest.raises(ValueError, match="unknown protocol settings"):
        preset_protocol("seats", frames=3)


def test_default_identity_is_what_runs_recorded_before_presets() -> None:
    # The protocol part of a default run's identity, as runs before presets and frame factors wrote it.
    before = {
        "system_prompt": None,
        "use_audio": True,
        "max_new_tokens": 1024,
        "do_sample": False,
        "sampling": {
            "fps": 2.0,
            "max_frames": 256,
            "min_frames": 4,
            "max_pixels": 256 * 28 * 28,
            "min_pixels": 128 * 28 * 28,
            "audio_window_s": 300.0,
        },
    }
    assert describe(preset_protocol()) == before
    seats = describe(preset_protocol("seats", "videomme"))
    assert seats["preset"] == "seats" and seats["sampling"]["max_frames"] == 768


def test_random_fallback_is_one_option_per_question_and_stable() -> None:
    options = {"A": "a", "B": "b", "C": "c", "D": "d"}
    picks = {fallback_choice(Question(f"q{i}", "dailyomni", None, "", options, "A")) for i in range(40)}
    assert picks == set(options)  # spread over the options
    q = Question("q1", "dailyomni", None, "", options, "A")
    assert fallback_choice(q) == fallback_choice(q)


def test_eval_with_a_preset_records_it_and_report_shows_it(question_files, media_root, tmp_path, capsys):
    out = tmp_path / "runs"
    base = ["eval", "--benchmark", "worldsense", "--media-root", str(media_root), "--model", "tiny"]
    base += ["--questions", str(question_files["worldsense"]), "--out", str(out), "--limit", "1"]
    base += ["--no-progress", "--workers", "0", "--method", "none"]
    assert main([*base, "--protocol", "seats", "--max-new-tokens", "2", "--run-name", "seats"]) == 0
    assert main([*base, "--max-new-tokens", "2", "--run-name", "paper"]) == 0
    seats = json.loads((out / "seats" / "worldsense" / "meta.json").read_text())
    paper = json.loads((out / "paper" / "worldsense" / "meta.json").read_text())
    assert seats["identity"]["protocol"]["preset"] == "seats"
    assert seats["identity"]["protocol"]["sampling"]["max_frames"] == 128
    assert seats["identity"]["protocol"]["system_prompt"] == SEATS_SYSTEM_PROMPT
    assert "preset" not in paper["identity"]["protocol"]
    assert seats["identity_sha256"] != paper["identity_sha256"]
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| Protocol" in table
    assert "seats (max_new_tokens=2)" in table and "omnisift-paper (max_new_tokens=2)" in table
    # The effective values behind each label, as the run recorded them (the tiny model's frame bounds).
    recorded = seats["identity"]["protocol"]["sampling"]
    pixels = recorded["max_pixels"]
    side = f"{pixels // 784}*28*28" if pixels % 784 == 0 else str(pixels)
    line = next(x for x in table.splitlines() if x.startswith("- seats (max_new_tokens=2) on WorldSense:"))
    assert f"{side} px/frame, <= 128 frames at 2 fps" in line
    assert f"system prompt '{SEATS_SYSTEM_PROMPT[:28]}...{SEATS_SYSTEM_PROMPT[-28:]}'" in line
    assert "answer cap 2" in line and "unparsable: wrong" in line  # WorldSense: SEATS scores unparsed wrong
    line = next(x for x in table.splitlines() if x.startswith("- omnisift-paper (max_new_tokens=2) on"))
    assert "<= 256 frames at 2 fps, system prompt the template's, answer cap 2, unparsable: wrong" in line


def test_every_preset_is_a_valid_protocol() -> None:
    for name in PRESETS:
        for benchmark in (None, "dailyomni", "worldsense", "videomme", "omnivideobench", "video_salmonn"):
            assert preset_protocol(name, benchmark).preset == name


def test_lmms_eval_records_the_preset_and_its_effective_values() -> None:
    """What the lmms-eval model stores per answer and the tasks put in the results file (protocol,none)."""
    from omnisift.lmms_eval.stats import protocol_record

    seats = json.loads(protocol_record(preset_protocol("seats", "dailyomni", fps=1.0)))
    assert seats == {
        "preset": "seats",
        "max_pixels": 144 * 28 * 28,
        "min_pixels": Protocol().sampling.min_pixels,
        "max_frames": 128,
        "fps": 1.0,
        "system_prompt": SEATS_SYSTEM_PROMPT,
        "max_new_tokens": 32,
        "unparsable": "random",
    }
    paper = json.loads(protocol_record(preset_protocol()))
    assert (
        paper["preset"] == "omnisift-paper"
        and paper["system_prompt"] is None
        and paper["unparsable"] == "wrong"
    )
