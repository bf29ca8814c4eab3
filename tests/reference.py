"""A slow, literal implementation of the OmniSIFT selection rules (SPEC 3), one sample and one group at a
time, written independently of the library to check it token for token."""

from __future__ import annotations

import torch
import torch.nn.functional as F

VIDEO, AUDIO = 151656, 151646


def _runs(ids: list[int], valid: list[bool]) -> list[list[int]]:
    """Maximal runs of consecutive valid video/audio token positions."""
    runs, current = [], []
    for n, (tok, ok) in enumerate(zip(ids, valid)):
        if ok and tok in (VIDEO, AUDIO):
            current.append(n)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def reference_keep(embeds, input_ids, position_ids, attention_mask, selector, video_drop, audio_drop):
    batch, seq_len, _ = embeds.shape
    keep = torch.ones(batch, seq_len, dtype=torch.bool)
    for b in range(batch):
        ids = input_ids[b].tolist()
        valid = attention_mask[b].bool().tolist() if attention_mask is not None else [True] * seq_len
        t = position_ids[0, b].tolist()
        max_pos = max(position_ids[:, b, n].max().item() for n in range(seq_len) if valid[n])
        for run in _runs(ids, valid):
            video_pos = [n for n in run if ids[n] == VIDEO]
            if not video_pos:
                continue
            grid_ts = sorted({t[n] for n in video_pos})
            groups = [grid_ts[i : i + 2] for i in range(0, len(grid_ts), 2)]
            for gi, group in enumerate(groups):
                f1 = [n for n in video_pos if t[n] == group[0]]
                x1 = embeds[b, f1]
                k = int(len(f1) * video_drop)
                dropped = set()
                sims = F.cosine_similarity(x1, x1.mean(0, keepdim=True), dim=-1)
                if k:
                    dropped |= {f1[i] for i in torch.topk(sims, k).indices.tolist()}
                f2 = [n for n in video_pos if len(group) > 1 and t[n] == group[1]]
                if f2 and len(f2) == len(f1) and k:
                    sims2 = F.cosine_similarity(embeds[b, f2], x1, dim=-1)
                    dropped |= {f2[i] for i in torch.topk(sims2, k).indices.tolist()}
                for n in dropped:
                    keep[b, n] = False
                anchors = [n for n in f1 + f2 if n not in dropped]
                start = group[0]
                end = groups[gi + 1][0] if gi + 1 < len(groups) else max_pos + 1
                audio = [n for n in run if ids[n] == AUDIO and start <= t[n] < end]
                if not anchors or len(audio) <= 1 or audio_drop == 0:
                    continue
                n_keep = len(audio) - int(len(audio) * audio_drop)
                if n_keep == 0:
                    continue
                scores = selector(embeds[b, anchors].unsqueeze(0), embeds[b, audio].unsqueeze(0))[0]
                kept = set(torch.topk(scores, n_keep).indices.tolist())
                for i, n in enumerate(audio):
                    if i not in kept:
                        keep[b, n] = False
    return keep
