"""A synthetic selection task whose answer depends on which audio tokens are kept.

Merged embeddings are laid out as Qwen2.5-Omni lays them out (`omnisift.models.qwen2_5_omni.synthetic`: text, then a 4 s video
with its audio track in two 2-second groups of two 4x4 grids and 50 audio tokens, then text), with
hand-made contents in a fixed orthonormal basis of the hidden space:

- each group shows a visual "key" (one of 4 directions) in three patches of each of its grids, on a
  background of near-duplicate tokens (so STVP keeps the key patches as anchors);
- 10 of the group's 50 audio tokens are informative: they carry the group's key and the sample's
  answer class (one of 2); the 40 distractors carry another key and the other class. Seen from the audio
  alone the two kinds look alike: only the match with the visual key tells them apart.

A frozen readout maps the normalised sum of the kept audio embeddings to class logits, so the
cross-entropy is low only when the informative tokens survive. The budget keeps 20 of 50 audio tokens
per group: at random that is 8 informative against 12 distractors (confidently wrong, loss about 4.5); a
perfect selector keeps all 10 against 10 (undecided, loss ln 2 = 0.69, the floor). Tighter budgets (keep
10) learn much less reliably: the straight-through gradient only reaches kept tokens. Training goes
through the real selection code (`select_tokens(method="omnisift")`, the straight-through factor in train mode) and
`compress_inputs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from omnisift import compress_inputs, select_tokens
from omnisift.methods import shortcuts_for
from omnisift.models.qwen2_5_omni import TOKEN_IDS
from omnisift.models.qwen2_5_omni.synthetic import av_clip, build_batch, text

HIDDEN = 32
KEYS = 4
CLASSES = 2
INFORMATIVE = 10  # audio tokens per group that carry the answer
VIDEO_DROP = 0.5
AUDIO_DROP = 0.6  # keep 20 of 50 per group (10 informative): random keeps 40 % of them
ANCHOR_SLOTS = ((0, 5, 10), (3, 8, 13))  # key patches of the first / second grid of a group
SCALE = 8.0


@dataclass
class TaskBatch:
    kwargs: dict[str, torch.Tensor]
    answer: torch.Tensor
    informative: torch.Tensor  # [B, N] True on informative audio tokens


def _basis(seed: int = 1234) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(HIDDEN, HIDDEN, generator=generator))
    return q.T  # rows are orthonormal directions


BASIS = _basis()
KEY_DIRS = BASIS[:KEYS]
CLASS_DIRS = BASIS[KEYS : KEYS + CLASSES]
BACKGROUND = BASIS[KEYS + CLASSES]


def make_batch(batch_size: int, generator: torch.Generator) -> TaskBatch:
    ids = TOKEN_IDS
    synthetic = build_batch([[text(4), av_clip(4.0, 4, 4), text(4)]] * batch_size, hidden_size=HIDDEN)
    input_ids, positions = synthetic.input_ids, synthetic.position_ids
    embeds = 0.2 * torch.randn(batch_size, input_ids.shape[1], HIDDEN, generator=generator)
    answer = torch.randint(CLASSES, (batch_size,), generator=generator)
    informative = torch.zeros_like(input_ids, dtype=torch.bool)
    t = positions[0]
    for b in range(batch_size):
        video = (input_ids[b] == ids.video).nonzero().squeeze(1)
        audio = (input_ids[b] == ids.audio).nonzero().squeeze(1)
        grid_ts = t[b, video].unique()
        for g in range(len(grid_ts) // 2):
            key = int(torch.randint(KEYS, (1,), generator=generator))
            for i, grid_t in enumerate(grid_ts[2 * g : 2 * g + 2]):
                cells = video[t[b, video] == grid_t]
                embeds[b, cells] += 2.0 * BACKGROUND
                anchors = cells[list(ANCHOR_SLOTS[i])]
                embeds[b, anchors] += 3.0 * KEY_DIRS[key] - 2.0 * BACKGROUND
            start = grid_ts[2 * g]
            end = grid_ts[2 * g + 2] if 2 * g + 2 < len(grid_ts) else t[b].max() + 1
            window = audio[(t[b, audio] >= start) & (t[b, audio] < end)]
            order = window[torch.randperm(len(window), generator=generator)]
            good, bad = order[:INFORMATIVE], order[INFORMATIVE:]
            embeds[b, good] += 2.0 * KEY_DIRS[key] + 1.5 * CLASS_DIRS[answer[b]]
            other_keys = (key + torch.randint(1, KEYS, (len(bad),), generator=generator)) % KEYS
            other_classes = (
                answer[b] + torch.randint(1, CLASSES, (len(bad),), generator=generator)
            ) % CLASSES
            embeds[b, bad] += 2.0 * KEY_DIRS[other_keys] + 1.5 * CLASS_DIRS[other_classes]
            informative[b, good] = True
    kwargs = {**synthetic.as_kwargs(), "inputs_embeds": embeds}
    return TaskBatch(kwargs, answer, informative)


def select(batch: TaskBatch, method: str, selector=None, seed: int = 0):
    k = batch.kwargs
    shortcuts = shortcuts_for(method, selector=selector, seed=seed)
    return select_tokens(
        k["inputs_embeds"],
        k["input_ids"],
        k["position_ids"],
        method=method,
        video_drop=VIDEO_DROP,
        audio_drop=AUDIO_DROP,
        attention_mask=k["attention_mask"],
        token_ids=k["token_ids"],
        **shortcuts,
    )


def readout_loss(batch: TaskBatch, result) -> torch.Tensor:
    """Frozen readout of the compressed batch: class logits from the normalised sum of kept audio rows."""
    k = batch.kwargs
    out = compress_inputs(result, k["position_ids"], k["attention_mask"], input_ids=k["input_ids"])
    is_audio = (out.input_ids == TOKEN_IDS.audio) & out.attention_mask.bool()
    pooled = (out.inputs_embeds * is_audio.unsqueeze(-1)).sum(1)
    # Normalised: a common scale of the kept embeddings changes nothing (as a normalised LLM input would
    # not), so the straight-through gradient only says which tokens are better than the others.
    logits = SCALE * F.normalize(pooled, dim=-1) @ CLASS_DIRS.T
    return F.cross_entropy(logits, batch.answer)


def recall(batch: TaskBatch, result) -> float:
    """Fraction of the informative audio tokens that were kept."""
    kept = result.keep & batch.informative
    return float(kept.sum() / batch.informative.sum())


def evaluate(selector, method: str = "omnisift", batches: int = 4, seed: int = 99) -> tuple[float, float]:
    """(recall, readout loss) on fresh batches, no gradient."""
    generator = torch.Generator().manual_seed(seed)
    recalls, losses = [], []
    with torch.no_grad():
        for i in range(batches):
            batch = make_batch(16, generator)
            result = select(batch, method, selector, seed=i)
            recalls.append(recall(batch, result))
            losses.append(float(readout_loss(batch, result)))
    return sum(recalls) / len(recalls), sum(losses) / len(losses)


def train_selector(selector, steps: int, lr: float = 1e-3, batch_size: int = 8, seed: int = 0) -> list[float]:
    """Adam on the readout loss; gradients reach the selector only through the straight-through factor."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(selector.parameters(), lr=lr)
    selector.train()
    losses = []
    for _ in range(steps):
        batch = make_batch(batch_size, generator)
        result = select(batch, "omnisift", selector)
        loss = readout_loss(batch, result)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    selector.eval()
    return losses
