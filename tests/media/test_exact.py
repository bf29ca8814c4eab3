"""load's frames equal, bit for bit, what the published reader computes from the same source frames,
on content where shortcuts show: colour, sharp edges (bicubic overshoot) and B-frames (skipped when
not wanted)."""

import numpy as np
import pytest
import torch
from torchvision.transforms import functional as tv

from omnisift import media


def textured(index: int, height: int, width: int) -> np.ndarray:
    """Colour ramps that move and wrap around every frame, over a chroma checkerboard."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[..., 0] = (9 * x + 11 * index) % 256
    image[..., 1] = (7 * y + 5 * index) % 256
    image[..., 2] = np.where(((x + index) // 4 + y // 4) % 2 == 0, 30, 230)
    return image


def write_b_frames(path, frames: int, size: tuple[int, int], keyint: int | None = None):
    """libx264 with its defaults (B-pyramid) and three B-frames between every two P-frames (b-adapt off:
    this content moves too much for x264 to choose B-frames itself); `keyint` fixes the GOP length."""
    import av

    height, width = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        gop = "" if keyint is None else f":keyint={keyint}:min-keyint={keyint}:scenecut=0"
        stream.options = {"x264-params": "b-adapt=0" + gop}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(textured(i, height, width), format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def every_frame(path) -> tuple[list[np.ndarray], list[str]]:
    """All frames, plainly decoded as packed RGB (what decord hands qwen-vl-utils), and their types."""
    import av

    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
    return [f.to_ndarray(format="rgb24") for f in decoded], [
        av.video.frame.PictureType(f.pict_type).name for f in decoded
    ]


@pytest.mark.parametrize("pixels", [24 * 28 * 28, 40 * 28 * 28])
def test_frames_equal_the_published_resize_of_the_same_frames(tmp_path, pixels):
    clip = write_b_frames(tmp_path / "b.mp4", 75, (120, 200))
    got = media.load(clip, fps=8.0, max_pixels=pixels, min_pixels=4 * 28 * 28, audio=False)
    rgb, kinds = every_frame(clip)
    assert "B" in kinds and got.num_frames == 24
    assert any(kinds[i] == "B" for i in got.indices)  # wanted B-frames are decoded, the others skipped
    # qwen-vl-utils: decord's batch as a [T, C, H, W] view, torchvision's resize, then float
    source = torch.from_numpy(np.stack([rgb[i] for i in got.indices])).permute(0, 3, 1, 2)
    height, width = got.frames.shape[2:]
    expected = tv.resize(source, [height, width], interpolation=tv.InterpolationMode.BICUBIC, antialias=True)
    assert (height, width) != (120, 200)
    assert torch.equal(got.frames, expected)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("held_frames", [None, 3])
def test_runs_decoded_side_by_side_give_the_published_frames(tmp_path, monkeypatch, threads, held_frames):
    """The GOP runs decoded on separate threads (and the resize of held frames whenever `held_frames`
    are waiting) change nothing: the frames equal a plain decode of the whole file, resized."""
    clip = write_b_frames(tmp_path / "g.mp4", 120, (120, 200), keyint=15)
    if held_frames is not None:
        monkeypatch.setattr(media, "_GATHER_BYTES", held_frames * 120 * 200 * 3)
    runs = []
    decode_run = media._decode_run
    monkeypatch.setattr(
        media,
        "_decode_run",
        lambda path, index, run, *rest: (runs.append(run), decode_run(path, index, run, *rest)),
    )
    got = media.load(
        clip, fps=8.0, max_pixels=24 * 28 * 28, min_pixels=4 * 28 * 28, audio=False, threads=threads
    )
    assert len(runs) == threads  # 8 GOPs: enough for every thread
    assert np.concatenate(runs).tolist() == sorted(set(np.concatenate(runs).tolist()))
    rgb, kinds = every_frame(clip)
    assert got.num_frames == 38 and any(kinds[i] == "B" for i in got.indices)
    source = torch.from_numpy(np.stack([rgb[i] for i in got.indices])).permute(0, 3, 1, 2)
    height, width = got.frames.shape[2:]
    expected = tv.resize(source, [height, width], interpolation=tv.InterpolationMode.BICUBIC, antialias=True)
    assert torch.equal(got.frames, expected)


def test_a_failing_run_fails_the_load_with_its_error(tmp_path, monkeypatch):
    clip = write_b_frames(tmp_path / "g.mp4", 120, (120, 200), keyint=15)
    add = media._Frames.add

    def failing_add(self, stamp, frame):
        if stamp > 60:
            raise media.MediaError(f"{clip}: broken frame")
        add(self, stamp, frame)

    monkeypatch.setattr(media._Frames, "add", failing_add)
    with pytest.raises(media.MediaError, match="broken frame"):
        media.load(clip, fps=8.0, max_pixels=24 * 28 * 28, min_pixels=4 * 28 * 28, audio=False, threads=2)


def test_aac_audio_starts_as_a_fresh_decode_does(tmp_path):
    """The first AAC frames are what a decoder opened on the file gives (librosa's ffmpeg does that);
    decoding again after a seek to 0 made the first ~20 ms differ by up to 0.12."""
    import av

    from omnisift.testing.clips import write_clip

    clip = write_clip(tmp_path / "a.mp4", 2.0, fps=10.0, audio_codec="aac", audio_layouts=("stereo",))
    got = media.load(clip, min_pixels=4 * 28 * 28, max_pixels=16 * 28 * 28)  # 16 kHz: no resampling
    with av.open(str(clip)) as container:
        fresh = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1).mean(0)
    np.testing.assert_allclose(got.audio[:800], fresh[:800], atol=1e-6)
