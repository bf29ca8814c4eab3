"""The checkpoint-folder path of `--model`, on a tiny model saved the way released checkpoints are laid out."""

import pytest
import torch
from safetensors.torch import load_file, save_file

from omnisift import CompressionConfig
from omnisift.evaluation.loading import load_compressed
from omnisift.evaluation.results import read_rows
from omnisift.evaluation.runner import EvalConfig, run_eval
from omnisift.inputs import Protocol
from omnisift.models.qwen2_5_omni.fixtures import tiny_omni_model, tiny_processor
from omnisift.selector import VisionGuidedAudioSelector


@pytest.fixture(scope="module")
def omnisift_folder(tmp_path_factory):
    """A full-model folder (config, weights, processor, speakers) plus `thinker.compressor.*` selector keys."""
    folder = tmp_path_factory.mktemp("OmniSIFT-tiny")
    tiny_omni_model().save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    torch.save(
        {"Chelsie": {"bos_token": 151870, "cond": torch.zeros(1, 16), "ref_mel": torch.zeros(1, 30, 80)}},
        folder / "spk_dict.pt",
    )
    weights = load_file(folder / "model.safetensors")
    selector = VisionGuidedAudioSelector(32)
    weights.update({f"thinker.compressor.{k}": v.contiguous() for k, v in selector.state_dict().items()})
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def test_load_checkpoint_folder(omnisift_folder):
    loaded = load_compressed(str(omnisift_folder), None)
    assert type(loaded.thinker).__name__ == "Qwen2_5OmniThinkerForConditionalGeneration"
    assert loaded.handle is None and not loaded.random_weights
    assert loaded.processor.video_token_id == 151656


def test_released_folder_runs_with_its_own_selector(omnisift_folder, question_files, media_root, tmp_path):
    config = EvalConfig(
        benchmark="worldsense",
        questions=question_files["worldsense"],
        media_root=media_root,
        model=str(omnisift_folder),
        out=tmp_path,
        compression=CompressionConfig(method="omnisift"),
        limit=2,
        progress=False,
        protocol=Protocol(max_new_tokens=2),
        workers=0,
    )
    outcome = run_eval(config)
    rows = read_rows(outcome.shard_file)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(r["retained"] < 1.0 for r in rows)
    assert outcome.bench_dir.parent.name == "OmniSIFT-tiny0__omnisift-v0.7-a0.3"


def test_missing_model_folder_says_what_to_pass(tmp_path):
    with pytest.raises(FileNotFoundError, match="tiny"):
        load_compressed(str(tmp_path / "nope"), None)


@pytest.mark.parametrize("method", ["omnisift-no-spatial", "omnisift-no-temporal", "omnisift-audio-only"])
def test_ablations_use_the_released_folder_selector(omnisift_folder, method):
    from omnisift import CompressionConfig

    saved = load_file(omnisift_folder / "model.safetensors")["thinker.compressor.v_proj.weight"]
    loaded = load_compressed(str(omnisift_folder), CompressionConfig(method=method, retain=0.25))
    try:
        assert loaded.handle.method.name == method
        assert torch.equal(loaded.handle.selector.v_proj.weight, saved)
    finally:
        loaded.handle.remove()


def test_method_params_reach_the_method_from_the_eval_command_line(tmp_path):
    from omnisift.cli import build_parser
    from omnisift.evaluation.cli import _eval_config

    args = build_parser().parse_args(
        ["eval", "--benchmark", "worldsense", "--questions", str(tmp_path / "q.jsonl"), "--model", "tiny"]
        + ["--media-root", str(tmp_path)]
        + ["--method", "omnizip", "--method-param", "knn=3", "--method-param", "merge_size=2"]
    )
    compression = _eval_config(args).compression
    assert (compression.method.knn, compression.method.merge_size) == (3, 2)


def test_method_params_reach_the_method_from_the_train_command_line(tmp_path):
    from omnisift.cli import build_parser
    from omnisift.training.cli import config_from_args

    args = build_parser().parse_args(
        ["train", "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "run"), "--model", "tiny"]
        + ["--method", "omnisift-no-spatial", "--audio-drop", "0.5"]
    )
    compression = config_from_args(args).compression
    assert compression.method.name == "omnisift-no-spatial" and compression.audio_drop == 0.5
    bad = build_parser().parse_args(
        ["train", "--data", str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "run")]
        + ["--model", "tiny", "--method-param", "knn=3"]
    )
    with pytest.raises(TypeError, match="no parameter knn"):
        config_from_args(bad)
