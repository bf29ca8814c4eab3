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


def write_b_frames(path, frames: int, size: tuple[int, int]):
    """libx264 with its defaults (B-pyramid) and three B-frames between every two P-frames (b-adapt off:
    this content moves too much for x264 to choose B-frames itself)."""
    import av

    height, width = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"x264-params": "b-adapt=0"}
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
