"""Media and protocol settings are validated once, where they are defined (`SamplingConfig`, `Protocol`):
every entry point refuses the same values with the same message naming the setting, value and range."""

from __future__ import annotations

import math
import re

import pytest

from omnisift import media
from omnisift.evaluation.cli import main
from omnisift.inputs import Protocol
from omnisift.lmms_eval.settings import parse_model_args
from omnisift.media import SamplingConfig
from omnisift.protocols import preset_protocol

BIG = 256 * 28 * 28
BAD = [
    ({"fps": 0.0}, "fps=0.0 is not allowed: a finite number > 0"),
    ({"fps": -1.0}, "fps=-1.0 is not allowed: a finite number > 0"),
    ({"fps": math.inf}, "fps=inf is not allowed: a finite number > 0"),
    ({"max_frames": 0}, "max_frames=0 is not allowed: a whole number >= 2"),
    ({"max_new_tokens": -1}, "max_new_tokens=-1 is not allowed: a whole number >= 1"),
    (
        {"min_pixels": BIG + 1, "max_pixels": BIG},
        f"min_pixels={BIG + 1} is not allowed: at most max_pixels ({BIG})",
    ),
]
SAMPLING_ONLY = [(values, message) for values, message in BAD if "max_new_tokens" not in values]


@pytest.mark.parametrize("values,message", BAD)
def test_python_api_refuses(values, message) -> None:
    sampling = {k: v for k, v in values.items() if k != "max_new_tokens"}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        Protocol(max_new_tokens=values.get("max_new_tokens", 8), sampling=SamplingConfig(**sampling))
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        preset_protocol("seats", **values)


@pytest.mark.parametrize("values,message", BAD)
def test_lmms_eval_model_args_refuse(values, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_model_args({"pretrained": "tiny", **values})


@pytest.mark.parametrize("values,message", SAMPLING_ONLY)
def test_media_load_refuses_before_opening_the_file(values, message, tmp_path) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        media.load(tmp_path / "not-even-read.mp4", **values)


@pytest.mark.parametrize("values,message", BAD)
def test_omnisift_eval_refuses(values, message, tmp_path, capsys) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n")
    argv = ["eval", "--benchmark", "worldsense", "--model", "tiny", "--questions", str(questions)]
    argv += ["--media-root", str(tmp_path)]
    argv += ["--out", str(tmp_path / "out"), "--no-progress"]
    for key, value in values.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
