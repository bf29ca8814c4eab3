"""Language-model loss on a compressed batch.

Compression removes audio/video slots, so labels must follow the same keep mask: the label of each
slot of the compressed batch is the label of the token it came from (`source_index`, -1 on padding,
which gets -100). Answer tokens are text and are never dropped, so every labelled token survives;
`compress_labels` checks that. The usual shift then pairs each kept token with the next kept one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import IGNORE_INDEX

__all__ = ["compress_labels", "answer_loss"]


def compress_labels(
    labels: torch.Tensor, source_index: torch.Tensor | None, *, check: bool = True
) -> torch.Tensor:
    """Labels of the compressed batch: `labels[b, source_index[b, k]]`, -100 where `source_index` is -1.

    `source_index` is None when nothing was dropped: the labels are returned as they are. With `check`,
    raises if a labelled token was dropped (one host sync).
    """
    if source_index is None:
        return labels
    if source_index.shape[0] != labels.shape[0]:
        raise ValueError(
            f"source_index {tuple(source_index.shape)} and labels {tuple(labels.shape)} disagree on batch"
        )
    gathered = labels.gather(1, source_index.clamp_min(0)).masked_fill(source_index < 0, IGNORE_INDEX)
    if check:
        counts = torch.stack([(labels != IGNORE_INDEX).sum(), (gathered != IGNORE_INDEX).sum()]).tolist()
        if counts[0] != counts[1]:
            raise RuntimeError(
                f"compression dropped labelled tokens ({counts[0]} labelled before, {counts[1]} after): only "
                "answer text may carry labels, never audio/video tokens"
            )
    return gathered


def answer_loss(
    hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted cross-entropy over the labelled tokens; returns (summed loss, number of tokens).

    `hidden` is the last hidden state [B, K, D] of the (compressed) batch and `labels` its labels [B, K].
    The head runs only on the positions that predict a labelled token (answers are short, the vocabulary
    is large), and the loss is computed in fp32.
    """
    if hidden.shape[:2] != labels.shape:
        raise ValueError(
            f"hidden states {tuple(hidden.shape[:2])} and labels {tuple(labels.shape)} disagree; were the labels "
            "compressed with the same keep mask as the inputs?"
        )
    targets = labels[:, 1:]
    picked = targets != IGNORE_INDEX
    logits = lm_head(hidden[:, :-1][picked]).float()
    loss = F.cross_entropy(logits, targets[picked], reduction="sum")
    return loss, picked.sum()
