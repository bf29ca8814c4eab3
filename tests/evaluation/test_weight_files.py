"""A broken model checkpoint is named with what is wrong and what to do, at every way in (issue 23, kind 2):
`load_model`, `load_compressed`, `load_pretrained`, `omnisift demo --model`, `omnisift eval --model`."""

from __future__ import annotations

import shutil

import pytest

from omnisift.cli import main
from omnisift.models.qwen2_5_omni.fixtures import tiny_processor, tiny_thinker

BROKEN = {
    "zero-byte": (lambda data: b"", "is empty \\(0 bytes\\)"),
    "truncated": (lambda data: data[: len(data) // 2], "truncated or corrupt"),
    "corrupt-header": (lambda data: b"\xff" * 64, "truncated or corrupt"),
    "pickled": (lambda data: b"\x80\x04\x95" + data[:200], "a pickle or torch.save file"),
}


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoint")
    tiny_thinker().save_pretrained(folder)
    tiny_processor().save_pretrained(folder)
    return folder


def _broken(good_folder, tmp_path, kind):
    folder = tmp_path / "ckpt"
    shutil.copytree(good_folder, folder)
    weights = folder / "model.safetensors"
    change, message = BROKEN[kind]
    weights.write_bytes(change(weights.read_bytes()))
    return folder, weights, message


def _load_model(folder):
    from omnisift import load_model

    load_model(folder)


def _load_compressed(folder):
    from omnisift.evaluation.loading import load_compressed

    load_compressed(str(folder), None)


def _load_pretrained(folder):
    from omnisift import load_pretrained

    load_pretrained(folder)


@pytest.mark.parametrize("kind", sorted(BROKEN))
@pytest.mark.parametrize("load", [_load_model, _load_compressed, _load_pretrained])
def test_python_loaders_name_the_broken_weight_file(load, kind, good_folder, tmp_path):
    folder, weights, message = _broken(good_folder, tmp_path, kind)
    # load_pretrained reads the folder's selector keys first: the same file, named as the selector's source.
    what = "(model weight|selector) file" if load is _load_pretrained else "model weight file"
    with pytest.raises(ValueError, match=rf"{what} {weights} .*{message}.*download"):
        load(folder)


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_demo_and_eval_name_the_broken_weight_file(
    kind, good_folder, tmp_path, question_files, media_root, capsys
):
    folder, weights, _ = _broken(good_folder, tmp_path, kind)
    assert main(["demo", "--model", str(folder), "--no-gain", "--no-picture", "--seconds", "1"]) == 2
    assert f"model weight file {weights}" in capsys.readouterr().err
    eval_argv = [
        "eval",
        "--benchmark",
        "worldsense",
        "--questions",
        str(question_files["worldsense"]),
        "--media-root",
        str(media_root),
        "--model",
        str(folder),
        "--method",
        "none",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
    ]
    assert main(eval_argv) == 2
    err = capsys.readouterr().err
    assert f"model weight file {weights}" in err and "Traceback" not in err


def test_a_folder_of_pickled_weights_only_is_refused_unread(good_folder, tmp_path, monkeypatch):
    from omnisift import load_model
    from omnisift.weight_files import WeightFileError

    folder = tmp_path / "ckpt"
    shutil.copytree(good_folder, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04\x95never unpickled")
    monkeypatch.setattr("torch.load", lambda *a, **k: pytest.fail("a pickle was opened"))
    with pytest.raises(
        WeightFileError, match=r"holds only pickled weights \(pytorch_model.bin\).*safetensors"
    ):
        load_model(folder)


def test_a_shard_missing_from_the_index_is_named(good_folder, tmp_path):
    import json

    from omnisift import load_model
    from omnisift.weight_files import WeightFileError

    folder = tmp_path / "ckpt"
    shutil.copytree(good_folder, folder)
    (folder / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightFileError, match=r"missing from .*model-00001-of-00002.safetensors.*incomplete"):
        load_model(folder)
