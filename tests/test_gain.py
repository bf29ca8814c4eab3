"""The demo's gain measurement on a 7B-shaped thinker: the table it prints, and (slow) a real run."""

from __future__ import annotations

import pytest

from omnisift.gain import WHY_TINY, GainReport, GainRow, format_gain, measure_gain


def test_table_gives_each_ratio_to_full_tokens_and_says_why() -> None:
    report = GainReport(
        layers=1,
        tokens_per_grid=64,
        rows=[
            GainRow("full tokens", 1.0, 400, 8.0, 16.0, 10.0),
            GainRow("retain 0.25", 0.25, 120, 2.0, 6.0, 3.0),
        ],
    )
    lines = format_gain(report).splitlines()
    assert "7B-shaped" in lines[0] and "1 decoder layer" in lines[0] and "64 video tokens" in lines[0]
    row = next(line for line in lines if line.startswith("retain 0.25"))
    # 28 layers: full 6 + 28 * 10 = 286 CPU s, retain 0.25: 3 + 28 * 3 = 87 CPU s.
    assert row.split() == ["retain", "0.25", "120", "2.00", "6.00", "0.38x", "87.0", "0.30x"]
    assert lines[-1] == WHY_TINY


@pytest.mark.slow
def test_dropping_tokens_shortens_the_7b_shaped_prefill(tmp_path) -> None:
    from omnisift.testing.clips import make_clip

    clip = make_clip(tmp_path / "clip.mp4", 2.0, fps=2.0, size=(224, 224))
    report = measure_gain(clip, [0.25])
    full, small = report.rows
    assert report.tokens_per_grid == 64
    assert small.tokens < 0.5 * full.tokens
    assert small.layers_cpu_s < full.layers_cpu_s < full.cpu_s
