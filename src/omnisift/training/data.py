"""Training data: (video, question, answer) conversations as JSONL, turned into labelled model inputs.

A row looks like the benchmark files (`video_salmonn`, `omnivideobench`):
`{"video": "clips/0.mp4", "conversations": [{"from": "human", "value": "<video>\\nQuestion"},
{"from": "gpt", "value": "Answer"}]}`. The media field may also be `videos` or `video_path`; paths are
relative to the media root. `<image>`/`<video>`/`<audio>` placeholders in the question are removed: the
video goes in as the conversation's media part, exactly as in evaluation.

Each example is encoded like an evaluation prompt (the same `omnisift.media.load`, chat template and
frame rate, the audio track interleaved) and the answer is appended after the assistant header as
`answer tokens + <|im_end|>`. Labels are -100 everywhere except on those appended tokens.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

from ..inputs import Protocol, collate, encode, load_video
from ..media import MediaError, configure_worker_threads
from ..media_check import MissingMediaError, describe_missing, missing_media
from ..textfiles import jsonl_objects

__all__ = [
    "IGNORE_INDEX",
    "DataError",
    "MissingMediaError",
    "Example",
    "load_examples",
    "check_media",
    "ConversationDataset",
    "collate_examples",
    "StreamSampler",
    "append_answer",
    "worker_init",
]

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100
MEDIA_FIELDS = ("video", "videos", "video_path")
_PLACEHOLDER = re.compile(r"<(?:image|video|audio)>\s*\n?")


class DataError(ValueError):
    """A training row that cannot be used (the message names the file and line)."""


@dataclass(frozen=True)
class Example:
    """One training conversation: a video, the user's question and the assistant's answer."""

    media: Path
    prompt: str
    answer: str
    line: int


def _turns(row: dict[str, Any], where: str) -> tuple[str, str]:
    turns = row.get("conversations")
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{where}: no 'conversations' list (expected human then gpt turns)")
    prompt = answer = None
    for turn in turns:
        if not isinstance(turn, dict):
            raise DataError(f"{where}: a conversation turn is not an object: {turn!r}")
        role = turn.get("from", turn.get("role"))
        value = turn.get("value", turn.get("content"))
        if role in ("human", "user") and prompt is None:
            prompt = value
        elif role in ("gpt", "assistant") and prompt is not None and answer is None:
            answer = value
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{where}: no human turn with a question")
    if not isinstance(answer, str) or not answer.strip():
        raise DataError(
            f"{where}: no answer (a 'gpt' turn with a non-empty value after the human turn); the loss is "
            "computed on the answer tokens, so every row needs one"
        )
    if len(turns) > 2:
        logger.warning("%s: %d turns; only the first question and its answer are used", where, len(turns))
    return _PLACEHOLDER.sub("", prompt).strip(), answer.strip()


def load_examples(path: str | Path, media_root: str | Path | None = None) -> list[Example]:
    """Read a JSONL file of conversations; media paths are resolved against `media_root`
    (default: the file's folder). Raises `DataError` naming the line of a bad row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"training data file {path} not found")
    root = Path(media_root) if media_root is not None else path.parent
    examples: list[Example] = []
    for number, where, row in jsonl_objects(path, "training data file", DataError):
        media = next((row[k] for k in MEDIA_FIELDS if isinstance(row.get(k), str) and row[k]), None)
        if media is None:
            raise DataError(f"{where}: no video path (one of the fields {', '.join(MEDIA_FIELDS)})")
        prompt, answer = _turns(row, where)
        if Path(media).is_absolute() or ".." in Path(media).parts:
            raise DataError(
                f"{where}: video path {media!r} is absolute or contains '..', which would leave the media "
                f"root {root}; data files may only name files under it"
            )
        examples.append(Example(media=root / media, prompt=prompt, answer=answer, line=number))
    if not examples:
        raise DataError(f"{path} holds no training rows")
    return examples


def check_media(examples: Sequence[Example], show: int = 5) -> None:
    """Fail before training starts when some videos are missing (each path checked once)."""
    paths = [e.media for e in examples]
    missing = missing_media(paths)
    if missing:
        raise MissingMediaError(
            f"{describe_missing(paths, missing, 'training rows', show)}. Check --media-root (paths in the "
            "data are relative to it)."
        )


def append_answer(inputs: dict[str, Any], answer_ids: Sequence[int]) -> dict[str, Any]:
    """Append the answer ids to a single-sample prompt encoding and build its labels.

    The prompt ends with the assistant header (generation prompt), so the appended ids are exactly
    what the chat template renders for the assistant turn, and only they are labelled.
    """
    ids = inputs["input_ids"]
    if ids.ndim != 2 or ids.shape[0] != 1:
        raise ValueError(f"expected a single-sample encoding [1, L], got input_ids {tuple(ids.shape)}")
    answer = torch.as_tensor(list(answer_ids), dtype=ids.dtype).unsqueeze(0)
    out = dict(inputs)
    out["input_ids"] = torch.cat([ids, answer], 1)
    mask = inputs["attention_mask"]
    out["attention_mask"] = torch.cat([mask, torch.ones_like(answer, dtype=mask.dtype)], 1)
    out["labels"] = torch.cat([torch.full_like(ids, IGNORE_INDEX), answer], 1)
    return out


class ConversationDataset(Dataset):
    """Decodes each example's video with `omnisift.media.load` and returns labelled model inputs.

    Run it under a DataLoader with worker processes (`--num-workers`) so the next batches are decoded
    while the model trains; each worker splits its threads with `worker_init` (torch 1, decoder the rest).
    """

    def __init__(
        self,
        examples: Sequence[Example],
        processor: Any,
        protocol: Protocol | None = None,
        *,
        max_length: int | None = None,
    ) -> None:
        self.examples = list(examples)
        self.processor = processor
        self.protocol = protocol or Protocol()
        self.max_length = max_length
        self.threads: int | None = None  # video decoding threads; set in DataLoader workers by worker_init
        tokenizer = processor.tokenizer
        self.end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if not isinstance(self.end_id, int) or self.end_id == tokenizer.unk_token_id:
            raise ValueError(
                "the processor's tokenizer has no <|im_end|> token: not a Qwen2.5-Omni processor"
            )

    def __len__(self) -> int:
        return len(self.examples)

    def answer_ids(self, answer: str) -> list[int]:
        ids = self.processor.tokenizer(answer, add_special_tokens=False)["input_ids"]
        return list(ids) + [self.end_id]

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The labelled sample at `index`; an unreadable video is replaced by the next readable sample
        (deterministically, so a resumed run sees the same data) and reported in `bad_samples`."""
        bad: list[str] = []
        for offset in range(len(self.examples)):
            try:
                out = self._encode(self.examples[(index + offset) % len(self.examples)])
            except MediaError as exc:
                bad.append(str(exc))
                continue
            out["bad_samples"] = bad
            return out
        raise MediaError(f"no video of the {len(self.examples)} training rows can be read, e.g. {bad[0]}")

    def _encode(self, example: Example) -> dict[str, Any]:
        answer = self.answer_ids(example.answer)
        if self.max_length is not None and len(answer) > self.max_length:
            raise DataError(  # before the video is decoded: the answer alone is too long
                f"{example.media} (data line {example.line}): the answer alone is {len(answer)} tokens, more "
                f"than --max-length {self.max_length}; shorten or drop the row"
            )
        try:
            video = load_video(example.media, self.protocol, threads=self.threads)
        except MediaError as exc:
            raise MediaError(f"{exc} (data line {example.line})") from exc
        if video.audio is None or video.audio.size == 0:
            raise MediaError(
                f"{example.media} (data line {example.line}) has no audio track: OmniSIFT training needs videos "
                "with their audio (the selector scores the audio tokens against the video)"
            )
        inputs = encode(self.processor, video, example.prompt, self.protocol)
        out = append_answer(inputs, answer)
        length = out["input_ids"].shape[1]
        if self.max_length is not None and length > self.max_length:
            raise DataError(
                f"{example.media} (data line {example.line}): {length} tokens exceed --max-length "
                f"{self.max_length}; lower the frame count or pixel cap, or drop the row"
            )
        return out


def worker_init(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: split this worker's threads (`omnisift.media.configure_worker_threads`)."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    if info is not None and isinstance(info.dataset, ConversationDataset):
        info.dataset.threads = configure_worker_threads(info.num_workers)


def collate_examples(samples: list[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """Left-padded batch (the evaluation collate) with labels padded by -100; `bad_samples` lists the
    unreadable samples that were replaced (see `ConversationDataset`)."""
    labels = [s["labels"] for s in samples]
    bad = [reason for s in samples for reason in s.get("bad_samples", ())]
    batch = collate(
        [{k: v for k, v in s.items() if k not in ("labels", "bad_samples")} for s in samples], pad_id=pad_id
    )
    length = batch["input_ids"].shape[1]
    batch["labels"] = torch.cat(
        [torch.nn.functional.pad(lab, (length - lab.shape[1], 0), value=IGNORE_INDEX) for lab in labels]
    )
    batch["bad_samples"] = bad
    return batch


class StreamSampler(Sampler[int]):
    """A fixed, seed-determined stream of `total` indices: reshuffled permutations of the dataset, one
    after the other. Position i of the stream depends only on (seed, i), so a resumed run skips the
    batches already consumed and sees exactly what the uninterrupted run saw."""

    def __init__(self, size: int, total: int, seed: int = 0) -> None:
        if size <= 0:
            raise ValueError("the dataset is empty")
        self.size, self.total, self.seed = size, total, seed

    def __iter__(self) -> Iterator[int]:
        produced, epoch = 0, 0
        while produced < self.total:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            for index in torch.randperm(self.size, generator=generator).tolist():
                if produced == self.total:
                    return
                yield index
                produced += 1
            epoch += 1

    def __len__(self) -> int:
        return self.total
