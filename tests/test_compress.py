"""compress: a compact batch of the kept tokens, original order and positions, any padding side."""

from __future__ import annotations

import pytest
import torch

from omnisift import build_layout, compress
from omnisift.models.qwen2_5_omni.synthetic import av_clip, build_batch, text


@pytest.mark.parametrize("side", ["left", "right"])
def test_compact_batch_keeps_order_positions_and_padding_side(side: str) -> None:
    batch = build_batch(
        [[text(3), av_clip(6, 2, 2), text(2)], [text(4), av_clip(2, 2, 2)], [text(5)]], 16, padding_side=side
    )
    generator = torch.Generator().manual_seed(0)
    keep = torch.rand(batch.input_ids.shape, generator=generator) > 0.4
    keep |= batch.attention_mask == 0
    layout = build_layout(batch.input_ids, batch.position_ids[0], batch.attention_mask, batch.token_ids)
    out = compress(
        keep, batch.inputs_embeds, batch.position_ids, batch.attention_mask, batch.input_ids, layout=layout
    )
    kept = keep & batch.attention_mask.bool()
    width = int(kept.sum(1).max())
    assert out.inputs_embeds.shape == (3, width, 16)
    for i in range(3):
        n = int(kept[i].sum())
        sl = slice(width - n, width) if side == "left" else slice(0, n)
        assert torch.equal(out.inputs_embeds[i, sl], batch.inputs_embeds[i, kept[i]])
        assert torch.equal(out.position_ids[:, i, sl], batch.position_ids[:, i, kept[i]])
        assert torch.equal(out.input_ids[i, sl], batch.input_ids[i, kept[i]])
        assert out.attention_mask[i].sum() == n and out.attention_mask[i, sl].all()
        assert torch.equal(out.source_index[i, sl], kept[i].nonzero().squeeze(1))
        pad = torch.ones(width, dtype=torch.bool)
        pad[sl] = False
        assert (out.position_ids[:, i, pad] == 1).all() and (out.inputs_embeds[i, pad] == 0).all()
        stats = out.stats[i]
        assert stats.length_after == n
        assert stats.video_after == int((kept[i] & (batch.input_ids[i] == 151656)).sum())
        assert stats.audio_before == int(
            (batch.attention_mask[i].bool() & (batch.input_ids[i] == 151646)).sum()
        )


def test_four_row_positions_and_no_mask() -> None:
    batch = build_batch([[text(3), av_clip(2, 2, 2)]], 8)
    keep = torch.ones_like(batch.input_ids, dtype=torch.bool)
    keep[0, 5:9] = False
    positions = torch.cat([batch.position_ids[:1], batch.position_ids])
    out = compress(keep, batch.inputs_embeds, positions)
    assert out.position_ids.shape == (4, 1, batch.input_ids.shape[1] - 4)
    assert torch.equal(out.position_ids[:, 0], positions[:, 0, keep[0]])


def test_bad_shapes() -> None:
    batch = build_batch([[text(3), av_clip(2, 2, 2)]], 8)
    keep = torch.ones_like(batch.input_ids, dtype=torch.bool)
    with pytest.raises(ValueError, match="position_ids"):
        compress(keep, batch.inputs_embeds, batch.position_ids[0])
    with pytest.raises(ValueError, match="inputs_embeds"):
        compress(keep[:, 1:], batch.inputs_embeds, batch.position_ids)
