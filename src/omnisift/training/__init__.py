"""Training: the OmniSIFT selector through its straight-through estimator, alone or with the LLM.

`train(TrainConfig(...))` runs a resumable `accelerate` training run (see `trainer`); `omnisift train`
is its command line (`cli.register`). The pieces are usable alone: `load_examples` and
`ConversationDataset` (labelled inputs from JSONL conversations), `OmniSIFTTrainingModule` (model +
selector with compression attached, answer loss), `compress_labels` and `answer_loss`.
"""

from .data import (
    IGNORE_INDEX,
    ConversationDataset,
    DataError,
    Example,
    MissingMediaError,
    StreamSampler,
    check_media,
    collate_examples,
    load_examples,
)
from .loss import answer_loss, compress_labels
from .module import RECIPES, OmniSIFTTrainingModule, apply_recipe, check_model, trainable_parameters
from .trainer import TrainConfig, TrainResult, default_lr, latest_checkpoint, load_training_model, train

__all__ = [
    "IGNORE_INDEX",
    "RECIPES",
    "ConversationDataset",
    "DataError",
    "Example",
    "MissingMediaError",
    "OmniSIFTTrainingModule",
    "StreamSampler",
    "TrainConfig",
    "TrainResult",
    "answer_loss",
    "apply_recipe",
    "check_media",
    "check_model",
    "collate_examples",
    "compress_labels",
    "default_lr",
    "latest_checkpoint",
    "load_examples",
    "load_training_model",
    "train",
    "trainable_parameters",
]
