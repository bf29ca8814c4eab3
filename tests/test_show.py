"""`omnisift show`: the picture matches the keep mask (pixels read back), on both families."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("matplotlib")
pytest.importorskip("av")

from PIL import Image  # noqa: E402

from omnisift import keep_mask, show  # noqa: E402
from omnisift.keepmap import GridKeep, KeepMap, StageKeep  # noqa: E402
from omnisift.loading import load_model  # noqa: E402
from omnisift.models import find_adapter  # noqa: E402
from omnisift.picture import DIM, draw  # noqa: E402
from omnisift.testing.clips import make_clip  # noqa: E402
from omnisift.testing.hooks import language_model_inputs  # noqa: E402


def cell_means(png: np.ndarray, box: tuple[float, float, float, float], rows: int, cols: int) -> np.ndarray:
    """[rows, cols] mean brightness of the middle of each cell of the frame drawn in `box`."""
    x0, y0, x1, y1 = box
    out = np.zeros((rows, cols))
    for r in range(rows):
        for c in range(cols):
            cx, cy = x0 + (c + 0.5) * (x1 - x0) / cols, y0 + (r + 0.5) * (y1 - y0) / rows
            half = max(1, int((x1 - x0) / cols * 0.2))
            out[r, c] = png[int(cy) - half : int(cy) + half + 1, int(cx) - half : int(cx) + half + 1].mean()
    return out


def frame_cell_means(frame: np.ndarray, cell: int, statistic=np.mean) -> np.ndarray:
    rows, cols = frame.shape[0] // cell, frame.shape[1] // cell
    out = np.zeros((rows, cols))
    lo, hi = int(cell * 0.3), int(cell * 0.7)
    for r in range(rows):
        for c in range(cols):
            out[r, c] = statistic(frame[r * cell + lo : r * cell + hi, c * cell + lo : c * cell + hi])
    return out


def check_drawn_masks(picture) -> tuple[int, int]:
    """Every bright enough cell reads back undimmed when kept and dimmed when dropped; returns how many
    kept and dropped cells were checked."""
    png = np.asarray(Image.open(picture.path).convert("RGB"), dtype=np.float64)
    assert png.shape[:2] == (picture.height, picture.width)
    checked = [0, 0]
    for (mi, si, g), box in picture.frame_boxes.items():
        km = picture.maps[mi]
        grid = km.stages[si].grids[g]
        rows, cols = grid.keep.shape
        drawn = cell_means(png, box, rows, cols)
        source = frame_cell_means(km.frames[grid.frames[0]], km.cell_pixels)
        spread = frame_cell_means(km.frames[grid.frames[0]], km.cell_pixels, np.std)
        for r in range(rows):
            for c in range(cols):
                if source[r, c] < 80 or spread[r, c] > 30:
                    continue  # too dark to tell dimmed from not, or an edge the thumbnail blurs
                expected = source[r, c] if grid.keep[r, c] else DIM * source[r, c]
                assert abs(drawn[r, c] - expected) < 22, (mi, si, g, r, c, drawn[r, c], source[r, c])
                checked[0 if grid.keep[r, c] else 1] += 1
    return checked[0], checked[1]


def grids_from_positions(positions: torch.Tensor, ids: torch.Tensor, keep: torch.Tensor, video_id: int):
    """Expected [rows, cols] keep per grid, placed by the t/h/w M-RoPE ids (independent of omnisift.layout)."""
    is_video = ids[0] == video_id
    t, h, w = (positions[i, 0][is_video] for i in range(3))
    kept = keep[0][is_video]
    grids = []
    for value in torch.unique(t):
        mine = t == value
        rows = h[mine] - h[mine].min()
        cols = w[mine] - w[mine].min()
        mask = np.zeros((int(rows.max()) + 1, int(cols.max()) + 1), dtype=bool)
        mask[rows.long().numpy(), cols.long().numpy()] = kept[mine].numpy()
        grids.append(mask)
    return grids


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen3-omni"])
def test_picture_matches_keep_mask(tmp_path, name) -> None:
    loaded = load_model(name)
    clip = make_clip(tmp_path / "clip.mp4", 4.0, fps=2.0)
    picture = show(
        clip, tmp_path / "show.png", model=loaded, methods="random,omnisift", retain=0.5, audio_drop=0.5
    )
    assert [m.method for m in picture.maps] == ["random", "omnisift"]
    kept, dropped = check_drawn_masks(picture)
    assert kept >= 5 and dropped >= 5, (kept, dropped)

    # The same selection computed outside `show`, placed by the position ids alone.
    from omnisift.inputs import prepare_inputs

    km = picture.maps[0]
    inputs = dict(prepare_inputs(loaded, clip, "What happens in this video, and what do you hear?"))
    assert inputs.pop("use_audio_in_video") is True
    call = language_model_inputs(loaded.thinker, inputs)
    token_ids = find_adapter(loaded.thinker).token_ids
    positions = call["position_ids"][-3:]
    keep = keep_mask(
        call["inputs_embeds"],
        inputs["input_ids"],
        positions,
        method="random",
        retain=0.5,
        audio_drop=0.5,
        token_ids=token_ids,
    )
    expected = grids_from_positions(positions, inputs["input_ids"], keep, token_ids.video)
    drawn = [g.keep for g in km.stages[0].grids]
    assert len(drawn) == len(expected) == 4
    for want, got in zip(expected, drawn, strict=True):
        np.testing.assert_array_equal(got, want)
    audio = keep[0][inputs["input_ids"][0] == token_ids.audio].numpy()
    np.testing.assert_array_equal(km.stages[0].audio_keep, audio)
    assert 0 < audio.sum() < audio.size
    # Audio tokens sit on the clip's time axis at the family's token rate.
    step = np.diff(km.audio_times)
    assert np.allclose(step, km.audio_token_seconds)
    assert km.audio_times[-1] == pytest.approx(4.0 - km.audio_token_seconds, abs=0.1)


def synthetic_map(stages_keep: list[list[np.ndarray]]) -> KeepMap:
    """A bright flat clip of two grids with the given masks per stage (no model)."""
    cell, rows, cols = 28, 4, 4
    frames = np.full((4, rows * cell, cols * cell, 3), 200, dtype=np.uint8)
    times = np.arange(50) * 0.04
    stages = [
        StageKeep(
            layer=layer,
            grids=[GridKeep(g, (2 * g, 2 * g + 1), float(g), mask) for g, mask in enumerate(masks)],
            audio_keep=np.arange(50) % (2 + i) == 0,
        )
        for i, (layer, masks) in enumerate(zip((0, 8), stages_keep, strict=False))
    ]
    return KeepMap(
        "fastv", 0.5, "Qwen2.5-Omni", frames, cell, np.zeros(32000, np.float32), 16000, times, 0.04, stages
    )


def test_each_stage_of_an_inner_method_is_drawn(tmp_path) -> None:
    checker = np.add.outer(np.arange(4), np.arange(4)) % 2 == 0
    corner = np.zeros((4, 4), dtype=bool)
    corner[0, 0] = True
    km = synthetic_map([[checker, ~checker], [corner, corner & False]])
    picture = draw([km], tmp_path / "stages.png", title="stages")
    assert {key[1] for key in picture.frame_boxes} == {0, 1}
    kept, dropped = check_drawn_masks(picture)
    assert kept == 8 + 8 + 1 and dropped == 8 + 8 + 15 + 16


def test_cli_show_names_the_missing_extra(tmp_path) -> None:
    from test_extras import _python

    done = _python(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'matplotlib':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from omnisift.cli import main\n"
        f"sys.exit(main(['show', '--out', {str(tmp_path / 'x.png')!r}]))\n"
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'omnisift[show]'" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_stages_come_from_the_positions_an_inner_method_reports() -> None:
    from types import SimpleNamespace

    from omnisift.keepmap import _stage_positions

    handle = SimpleNamespace(
        last_kept_positions=[{8: torch.tensor([1, 5]), 0: torch.tensor([0, 1, 2, 5])}],
        last_source_index=torch.tensor([[0, 1, 2, 5]]),
    )
    stages = _stage_positions(handle, 7)
    assert [layer for layer, _ in stages] == [0, 8]
    assert stages[0][1].tolist() == [True, True, True, False, False, True, False]
    assert stages[1][1].tolist() == [False, True, False, False, False, True, False]
    # Without per-stage positions the LLM input (the compact batch's source slots) is the one stage.
    plain = SimpleNamespace(last_source_index=torch.tensor([[-1, 2, 4]]))
    [(layer, present)] = _stage_positions(plain, 5)
    assert layer == 0 and present.tolist() == [False, False, True, False, True]


INNER_PARAMS = {"drop_layers": [1, 2, 3], "late_layer": 5, "k": 2}
"""seats' layers and fastv-om's k for a 6-layer tiny thinker (the 2-layer fixture has no room for SEATS)."""


def _deeper_tiny(name: str, layers: int = 6):
    import importlib
    from dataclasses import replace

    loaded = load_model(name)
    fixtures = importlib.import_module(loaded.adapter.__module__.rsplit(".", 1)[0] + ".fixtures")
    return replace(loaded, model=fixtures.tiny_thinker(seed=0, num_layers=layers))


@pytest.mark.parametrize("name", ["tiny", "tiny-qwen3-omni"])
def test_inner_methods_draw_each_stage_the_handle_reports(tmp_path, name) -> None:
    """`show --method seats,fastv-om` on the tiny model: one row per stage, each drawn as the pixels say,
    and each equal to the positions `handle.last_kept_positions` reports, placed by the M-RoPE ids."""
    from omnisift import CompressionConfig, attach
    from omnisift.inputs import prepare_inputs

    loaded = _deeper_tiny(name)
    clip = make_clip(tmp_path / "clip.mp4", 4.0, fps=2.0)
    picture = show(
        clip,
        tmp_path / "inner.png",
        model=loaded,
        methods="seats,fastv-om",
        retain=0.25,
        method_params=INNER_PARAMS,
    )
    assert [[s.layer for s in m.stages] for m in picture.maps] == [[0, 1, 2, 3, 5], [0, 2]]
    assert {key[:2] for key in picture.frame_boxes} == {(0, s) for s in range(5)} | {(1, 0), (1, 1)}
    kept, dropped = check_drawn_masks(picture)
    assert kept >= 10 and dropped >= 10, (kept, dropped)

    inputs = dict(prepare_inputs(loaded, clip, "What happens in this video, and what do you hear?"))
    inputs.pop("use_audio_in_video")
    call = language_model_inputs(loaded.thinker, inputs)
    token_ids = find_adapter(loaded.thinker).token_ids
    positions = call["position_ids"][-3:]
    ids = inputs["input_ids"]
    for km, method in zip(picture.maps, ("seats", "fastv-om"), strict=True):
        params = {k: v for k, v in INNER_PARAMS.items() if (k == "k") == (method == "fastv-om")}
        handle = attach(loaded.thinker, CompressionConfig(method=method, retain=0.25, method_params=params))
        try:
            with torch.no_grad():
                loaded.thinker(**inputs, use_audio_in_video=True)
            reported = handle.last_kept_positions[0]
        finally:
            handle.remove()
        assert sorted(reported) == [s.layer for s in km.stages]
        for stage in km.stages:
            present = torch.zeros(ids.shape[1], dtype=torch.bool)
            present[reported[stage.layer]] = True
            want = grids_from_positions(positions, ids, present.unsqueeze(0), token_ids.video)
            for expected, grid in zip(want, stage.grids, strict=True):
                np.testing.assert_array_equal(grid.keep, expected, err_msg=f"{method} layer {stage.layer}")
            audio = present[ids[0] == token_ids.audio].numpy()
            np.testing.assert_array_equal(stage.audio_keep, audio)
        counts = [(s.video_kept, s.audio_kept) for s in km.stages]
        assert counts[0] != counts[-1] and counts == sorted(counts, reverse=True), counts


def test_show_gives_each_method_its_own_settings_and_refuses_unused_ones(tmp_path) -> None:
    from omnisift.visualize import _params_per_method

    shares = _params_per_method(["seats", "fastv-om", "random"], {**INNER_PARAMS, "seed": 3})
    assert shares["seats"] == {"drop_layers": [1, 2, 3], "late_layer": 5}
    assert shares["fastv-om"] == {"k": 2}
    assert shares["random"] == {"seed": 3}
    with pytest.raises(ValueError, match="knn are taken by none of seats, fastv-om"):
        _params_per_method(["seats", "fastv-om"], {"knn": 3})
