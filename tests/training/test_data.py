import json

import pytest
import torch

from omnisift.inputs import Protocol, effective_protocol, encode, load_video
from omnisift.training import (
    IGNORE_INDEX,
    DataError,
    MissingMediaError,
    StreamSampler,
    check_media,
    collate_examples,
    load_examples,
)


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def _row(question="<video>\nQ?", answer="A", **media):
    media = media or {"video": "v.mp4"}
    return {
        **media,
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
    }


def test_rows_read_like_the_benchmark_files(tmp_path):
    data = _write(
        tmp_path / "d.jsonl",
        [
            _row(video="a.mp4"),
            _row("<image>\nWhich?", " B ", videos="videos/b.mp4"),
            "",
            _row(video_path="c.mp4"),
        ],
    )
    examples = load_examples(data, media_root=tmp_path / "root")
    assert [e.media for e in examples] == [tmp_path / "root" / p for p in ("a.mp4", "videos/b.mp4", "c.mp4")]
    assert [e.prompt for e in examples] == ["Q?", "Which?", "Q?"]
    assert [e.answer for e in examples] == ["A", "B", "A"]
    assert [e.line for e in examples] == [1, 2, 4]
    assert load_examples(data)[0].media == tmp_path / "a.mp4"  # default root: the data file's folder


@pytest.mark.parametrize(
    "row, message",
    [
        ({"video": "v.mp4", "conversations": [{"from": "human", "value": "Q?"}]}, "no answer"),
        (_row(answer="  "), "no answer"),
        (
            {
                "video": "v.mp4",
                "conversations": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}],
            },
            "no answer",
        ),
        ({"video": "v.mp4", "conversations": [{"from": "gpt", "value": "A"}]}, "no human turn"),
        ({"conversations": _row()["conversations"]}, "no video path"),
        ({"video": "v.mp4"}, "no 'conversations'"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_rows_name_their_line(tmp_path, row, message):
    data = _write(tmp_path / "d.jsonl", [_row(), row])
    with pytest.raises(DataError, match=rf"d.jsonl:2: .*{message}"):
        load_examples(data)


def test_missing_media_is_reported_before_training(tmp_path):
    (tmp_path / "here.mp4").write_bytes(b"x")
    data = _write(
        tmp_path / "d.jsonl", [_row(video="here.mp4"), _row(video="gone.mp4"), _row(video="gone.mp4")]
    )
    examples = load_examples(data)
    with pytest.raises(MissingMediaError, match=r"2 of 3 training rows \(1 videos\).*gone.mp4.*--media-root"):
        check_media(examples)
    check_media(examples[:1])


def test_labels_cover_only_the_answer_and_the_prompt_is_the_evaluation_prompt(dataset, processor):
    example = dataset.examples[1]
    item = dataset[1]
    ids, labels = item["input_ids"][0], item["labels"][0]
    labelled = (labels != IGNORE_INDEX).nonzero().squeeze(1)
    answer_ids = dataset.answer_ids(example.answer)
    # Labelled tokens are exactly the appended answer + <|im_end|>, at the end of the sequence.
    assert labelled.tolist() == list(range(len(ids) - len(answer_ids), len(ids)))
    assert processor.tokenizer.decode(ids[labelled]) == example.answer + "<|im_end|>"
    assert torch.equal(labels[labelled], ids[labelled])
    # Everything before is what evaluation sends for the same video and prompt.
    protocol = effective_protocol(Protocol(), "tiny")
    reference = encode(processor, load_video(example.media, protocol), example.prompt, protocol)
    assert torch.equal(ids[: len(ids) - len(answer_ids)], reference["input_ids"][0])
    assert processor.tokenizer.decode(ids[: len(ids) - len(answer_ids)]).endswith("<|im_start|>assistant\n")
    assert torch.equal(item["pixel_values_videos"], reference["pixel_values_videos"])
    assert item["use_audio_in_video"] is True


def test_collate_pads_left_and_keeps_labels_aligned(cached, processor):
    batch = collate_examples([cached[0], cached[2]], pad_id=processor.tokenizer.pad_token_id)
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert labels.shape == ids.shape
    assert bool((mask[:, -1] == 1).all()) and bool((mask[:, 0] == 0).any())  # left padded
    assert bool((labels[mask == 0] == IGNORE_INDEX).all())
    picked = labels != IGNORE_INDEX
    assert torch.equal(labels[picked], ids[picked])
    for row, source in zip(labels, (cached[0], cached[2]), strict=True):
        assert torch.equal(row[row != IGNORE_INDEX], source["labels"][0][source["labels"][0] != IGNORE_INDEX])


def test_sample_without_audio_is_refused(tmp_path, processor):
    import av
    import numpy as np

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = 112
        stream.pix_fmt = "yuv420p"
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((112, 112, 3), 20 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    from omnisift.media import MediaError
    from omnisift.training import ConversationDataset

    data = _write(tmp_path / "d.jsonl", [_row(video="silent.mp4")])
    dataset = ConversationDataset(load_examples(data), processor, effective_protocol(Protocol(), "tiny"))
    with pytest.raises(MediaError, match="no audio track"):
        dataset[0]


def test_stream_sampler_is_a_seeded_prefix_stable_stream():
    long = list(StreamSampler(5, 23, seed=3))
    assert len(long) == 23 and list(StreamSampler(5, 9, seed=3)) == long[:9]
    for epoch in range(4):
        assert sorted(long[5 * epoch : 5 * epoch + 5]) == list(range(5))
    assert long[:5] != long[5:10] or long[5:10] != long[10:15]
    assert list(StreamSampler(5, 23, seed=4)) != long
