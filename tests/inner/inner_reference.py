"""A literal, one-sample reference of SEATS, FastV and FastV-om, written from the rules (docs/design.md#inner-llm-pruning) with
Python loops and the stock decoder layers called one by one (full caches trimmed by hand).

It shares no code with `omnisift.inner` except the schedule numbers (checked on their own against the
published test vectors) and the encoder statistics (checked on their own)."""

from __future__ import annotations

import math

import torch
from transformers import DynamicCache
from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import apply_rotary_pos_emb, repeat_kv

from omnisift.inner.schedule import block_schedule
from omnisift.testing.hooks import language_model_inputs

PAIRS = {0.35: (0.30, 0.65), 0.25: (0.20, 0.55), 0.15: (0.10, 0.45), 0.10: (0.06, 0.35)}


def _count(ratio: float, n: int) -> int:
    return 0 if n == 0 else min(n, max(1, round(ratio * n)))


def _top(scores: list[float], candidates: list[int], k: int) -> set[int]:
    ranked = sorted(candidates, key=lambda i: (-scores[i], i))
    return set(ranked[:k])


def _runs(flags: list[bool]) -> list[list[int]]:
    out: list[list[int]] = []
    for i, flag in enumerate(flags):
        if flag and (i == 0 or not flags[i - 1]):
            out.append([])
        if flag:
            out[-1].append(i)
    return out


def seats_window_rule(scores, is_video, is_audio, keep_v, keep_a) -> set[int]:
    nv, na = sum(is_video), sum(is_audio)
    kv, ka = _count(keep_v, nv), _count(keep_a, na)
    vr, ar = _runs(is_video), _runs(is_audio)
    windows = max(len(vr), len(ar))
    if windows <= 1 or not vr or not ar:
        return _top(scores, [i for i, f in enumerate(is_video) if f], kv) | _top(
            scores, [i for i, f in enumerate(is_audio) if f], ka
        )
    vr += [[]] * (windows - len(vr))
    ar += [[]] * (windows - len(ar))

    def soft(parts):
        imp = {w: sum(scores[i] for i in p) / len(p) for w, p in enumerate(parts) if p}
        top = max(v / 0.1 for v in imp.values())
        ex = {w: math.exp(v / 0.1 - top) for w, v in imp.items()}
        z = sum(ex.values())
        return [ex.get(w, 0.0) / z for w in range(len(parts))]

    wv, wa = soft(vr), soft(ar)
    total = kv + ka
    size = [len(vr[w]) + len(ar[w]) for w in range(windows)]
    b = [min(size[w], max(1, round((wv[w] + wa[w]) / 2 * total))) for w in range(windows)]
    while sum(b) < total and any(b[w] < size[w] for w in range(windows)):
        w = min((w for w in range(windows) if b[w] < size[w]), key=lambda w: (b[w], w))
        b[w] += 1
    while sum(b) > total and any(x > 1 for x in b):
        w = max((w for w in range(windows) if b[w] > 1), key=lambda w: (b[w], -w))
        b[w] -= 1
    kept: set[int] = set()
    for w in range(windows):
        nvw, naw = len(vr[w]), len(ar[w])
        den = wv[w] * kv + wa[w] * ka
        frac = wv[w] * kv / den if den > 0 else (1.0 if naw == 0 else 0.0)
        vb = min(round(b[w] * frac), nvw)
        ab = min(b[w] - vb, naw)
        rest = b[w] - vb - ab
        add = min(rest, nvw - vb)
        vb, rest = vb + add, rest - add
        ab += min(rest, naw - ab)
        if nvw and vb == 0:
            vb = 1
            if ab > 1 and vb + ab > b[w]:
                ab -= 1
        if naw and ab == 0:
            ab = 1
            if vb > 1 and vb + ab > b[w]:
                vb -= 1
        kept |= _top(scores, vr[w], vb) | _top(scores, ar[w], ab)
    return kept


def diversity(features: torch.Tensor, stats: list[float], ratio: float) -> list[int]:
    """Greedy max-min selection of one window (indices into the window)."""
    n = features.shape[0]
    k = max(1, min(n, round(ratio * n)))
    f = torch.nn.functional.normalize(features.float(), dim=-1)
    d = [[(1.0 - float(f[i] @ f[j])) * stats[j] * 1e6 for j in range(n)] for i in range(n)]
    if n == 1:
        return [0]
    nearest = [sorted(d[i][j] for i in range(n))[1] for j in range(n)]
    chosen = [max(range(n), key=lambda j: (nearest[j], -j))]
    while len(chosen) < k:
        rest = [j for j in range(n) if j not in chosen]
        chosen.append(max(rest, key=lambda j: (min(d[s][j] for s in chosen), -j)))
    return sorted(chosen)


def stage_one(
    embeds, ids, t_row, video_id, audio_id, video_stats, audio_stats, pair, audio_window=50
) -> list[int]:
    """Positions kept at the LLM input (one sample, one video with its audio track)."""
    n = ids.shape[0]
    video = [i for i in range(n) if ids[i] == video_id]
    audio = [i for i in range(n) if ids[i] == audio_id]
    kept = {i for i in range(n) if i not in video and i not in audio}
    grids = sorted({float(t_row[i]) for i in video})
    for g in range(0, len(grids), 2):
        members = [i for i in video if float(t_row[i]) in grids[g : g + 2]]
        chosen = diversity(embeds[members], [video_stats[i] for i in members], min(1.0, 1.4 * pair[0]))
        kept |= {members[c] for c in chosen}
    for start in range(0, len(audio), audio_window):
        members = audio[start : start + audio_window]
        chosen = diversity(embeds[members], [audio_stats[i] for i in members], min(1.0, 1.4 * pair[1]))
        kept |= {members[c] for c in chosen}
    return sorted(kept)


def scores_of(layer, lm, hidden, positions, query: int) -> list[float]:
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    n = hidden.shape[1]
    q = attn.q_proj(x).view(1, n, -1, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(1, n, -1, attn.head_dim).transpose(1, 2)
    cos, sin = lm.rotary_emb(hidden, positions)
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    k = repeat_kv(k, attn.num_key_value_groups)
    logits = (q[0, :, query].unsqueeze(1) @ k[0].transpose(-1, -2))[:, 0]
    weights = torch.softmax(logits.float() * attn.scaling, dim=-1)
    return weights.mean(0).tolist()


def run(thinker, inputs, method: str, retain: float, stages: list[int], *, stats=None, k=2, seed=0, decode=0):
    """(kept positions per stage's first layer, last-token logits, greedy tokens) of one sample."""
    config = thinker.config
    lm = thinker.model.language_model
    captured = language_model_inputs(thinker, inputs)
    embeds = captured["inputs_embeds"][0]
    positions = captured["position_ids"][-3:]
    ids = inputs["input_ids"][0]
    video_id, audio_id = config.video_token_id, config.audio_token_id
    pair = PAIRS[retain]
    layers = lm.config.num_hidden_layers
    if method == "seats":
        index = stage_one(embeds, ids, positions[0, 0], video_id, audio_id, stats[0], stats[1], pair)
    else:
        index = list(range(ids.shape[0]))
    kept = {0: list(index)}
    with torch.no_grad():
        hidden = embeds[index].unsqueeze(0)
        pos = positions[:, :, index]
        cache = DynamicCache(config=lm.config)
        for i, layer in enumerate(lm.layers):
            if i in stages:
                stage = stages.index(i)
                tokens = ids[index].tolist()
                is_v = [t == video_id for t in tokens]
                is_a = [t == audio_id for t in tokens]
                query = max(j for j in range(len(tokens)) if not (is_v[j] or is_a[j]))
                scores = scores_of(lm.layers[i - 1], lm, hidden, pos, query)
                local = _stage(method, stage, scores, is_v, is_a, pair, layers, stages, k, seed)
                local |= {j for j in range(len(tokens)) if not (is_v[j] or is_a[j])}
                local = sorted(local)
                hidden, pos = hidden[:, local], pos[:, :, local]
                for done in range(i):
                    cache.layers[done].keys = cache.layers[done].keys[:, :, local]
                    cache.layers[done].values = cache.layers[done].values[:, :, local]
                index = [index[j] for j in local]
                kept[i] = list(index)
            cos, sin = lm.rotary_emb(hidden, pos)
            n = hidden.shape[1]
            mask = torch.full((n, n), float("-inf")).triu(1)[None, None]
            hidden = layer(
                hidden,
                attention_mask=mask,
                position_embeddings=(cos, sin),
                past_key_values=cache,
                use_cache=True,
            )
        logits = thinker.lm_head(lm.norm(hidden))[0, -1]
        tokens, last = [], int(positions[:, 0].max())
        step_logits = logits
        for step in range(decode):
            token = int(step_logits.argmax())
            tokens.append(token)
            h = lm.embed_tokens(torch.tensor([[token]]))
            p = torch.full((3, 1, 1), last + step + 1)
            cos, sin = lm.rotary_emb(h, p)
            for layer in lm.layers:
                h = layer(
                    h,
                    attention_mask=None,
                    position_embeddings=(cos, sin),
                    past_key_values=cache,
                    use_cache=True,
                )
            step_logits = thinker.lm_head(lm.norm(h))[0, -1]
    return kept, logits, tokens


def _stage(method, stage, scores, is_v, is_a, pair, layers, stages, k, seed) -> set[int]:
    video = [j for j, f in enumerate(is_v) if f]
    audio = [j for j, f in enumerate(is_a) if f]
    if method == "seats":
        if stage == 3:
            return set()
        drops, late = stages[:3], stages[3]
        rv = block_schedule(drops, late, layers, pair[0])[stage]
        ra = block_schedule(drops, late, layers, pair[1])[stage]
        return seats_window_rule(scores, is_v, is_a, rv, ra)
    if method == "fastv-om":
        r = (pair[0] * len(video) + pair[1] * len(audio)) / (len(video) + len(audio))
        return _top(scores, video + audio, _count((r * layers - k) / (layers - k), len(video) + len(audio)))
    total = pair[0] * len(video) + pair[1] * len(audio)
    rv, ra = (total - len(audio)) / len(video), 1.0
    if rv < 0.05:
        rv, ra = 0.05, (total - 0.05 * len(video)) / len(audio)
    kept = _top(scores, video, _count((rv * layers - k) / (layers - k), len(video)))
    if ra >= 1.0:
        return kept | set(audio)
    count = _count((ra * layers - k) / (layers - k), len(audio))
    order = torch.randperm(len(audio), generator=torch.Generator().manual_seed(seed))[:count].tolist()
    return kept | {audio[o] for o in order}
