"""Helpers shared by the training tests."""

import torch
from torch.utils.data import Dataset


class CachedDataset(Dataset):
    """Decodes each clip once per session (the items are never modified downstream)."""

    def __init__(self, items: list[dict]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def batch_of(cached: CachedDataset, processor, indices) -> dict:
    from omnisift.training import collate_examples

    return collate_examples([cached[i] for i in indices], pad_id=processor.tokenizer.pad_token_id)


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
