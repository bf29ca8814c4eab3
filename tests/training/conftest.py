import json
from pathlib import Path

import pytest
from training_helpers import CachedDataset

from omnisift.inputs import Protocol, effective_protocol
from omnisift.models.qwen2_5_omni.fixtures import tiny_processor
from omnisift.testing.clips import make_clip
from omnisift.training import ConversationDataset, load_examples

ROWS = [
    ("clip0.mp4", 3.0, 300.0, "<video>\nWhat do you hear?", "A low tone."),
    ("clip1.mp4", 4.0, 500.0, "Describe the video.", "A white square moves to the right."),
    ("sub/clip2.mp4", 5.0, 700.0, "<video>\nWhich pitch?", "High."),
]


@pytest.fixture(autouse=True)
def _one_thread():
    """These tests run many small ops: one intra-op thread is several times faster than two when the
    machine's cores are shared (OpenMP threads wait on each other), and no slower when they are not."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fresh_accelerate():
    """Each test builds its own Accelerator; accelerate keeps process-wide singletons."""
    yield
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> Path:
    """A media root with three short clips (moving square + tone) and `data.jsonl` conversations."""
    root = tmp_path_factory.mktemp("media")
    (root / "sub").mkdir()
    with (root / "data.jsonl").open("w") as handle:
        for path, seconds, tone, question, answer in ROWS:
            make_clip(root / path, seconds, fps=4.0, tone_hz=tone)
            row = {
                "video": path,
                "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
            }
            handle.write(json.dumps(row) + "\n")
    return root


@pytest.fixture(scope="session")
def processor():
    # An 8 s Whisper window (the clips are shorter) keeps the audio encoder cheap.
    return tiny_processor(audio_chunk_length=8)


@pytest.fixture(scope="session")
def dataset(media, processor) -> ConversationDataset:
    return ConversationDataset(
        load_examples(media / "data.jsonl"), processor, effective_protocol(Protocol(), "tiny")
    )


@pytest.fixture(scope="session")
def cached(dataset) -> CachedDataset:
    return CachedDataset([dataset[i] for i in range(len(dataset))])
