"""The same bad compression setting gets the same message at every entry point (issue 23, kind 1):
`omnisift eval`, `train`, `show`, `demo`, the Python API, lmms-eval's `--model_args` and the vLLM helpers.
The media and protocol settings (fps, max_frames, pixels, max_new_tokens) are the same check in
tests/test_settings_validation.py."""

from __future__ import annotations

import json
import math
import re

import pytest

from omnisift.cli import main
from omnisift.config import CompressionConfig
from omnisift.lmms_eval.settings import parse_model_args

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

RETAIN = "retain must be a number in (0, 1] (fraction of audio+video tokens kept, e.g. 0.25), got {}"
BAD_RETAIN = [1.5, math.nan, math.inf, -0.1]
BAD = [
    *(({"retain": value}, RETAIN.format(value)) for value in BAD_RETAIN),
    ({"method": "nosuch"}, "unknown method 'nosuch'; available: "),
    ({"method": "random", "nosuch": 1}, "method 'random' has no parameter nosuch; its parameters: seed"),
]
IDS = ["retain-1.5", "retain-nan", "retain-inf", "retain-neg", "unknown-method", "unknown-param"]


def _flags(values: dict) -> list[str]:
    flags: list[str] = []
    for key, value in values.items():
        if key in ("retain", "method"):
            flags += [f"--{key}", str(value)]
        else:
            flags += ["--method-param", f"{key}={value}"]
    return flags


def _python_kwargs(values: dict) -> dict:
    kwargs = {k: v for k, v in values.items() if k in ("retain", "method")}
    params = {k: v for k, v in values.items() if k not in kwargs}
    return {**kwargs, "method_params": params} if params else kwargs


@pytest.mark.parametrize("values,message", BAD, ids=IDS)
def test_python_api(values, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        CompressionConfig(**_python_kwargs(values))


@pytest.mark.parametrize("values,message", BAD, ids=IDS)
def test_a_config_read_back_from_json_as_the_vllm_engine_does(values, message) -> None:
    data = {"method": {"name": values.get("method", "omnisift")}, "retain": values.get("retain")}
    data["method"].update({k: v for k, v in values.items() if k not in ("retain", "method")})
    with pytest.raises(ValueError, match=re.escape(message)):
        CompressionConfig.from_dict(json.loads(json.dumps(data)))


@pytest.mark.parametrize("values,message", BAD, ids=IDS)
def test_lmms_eval_model_args(values, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_model_args({"pretrained": "tiny", **values}).compression()


@pytest.mark.parametrize("value", BAD_RETAIN)
def test_vllm_request_kwargs(value) -> None:
    from omnisift.vllm import request_kwargs

    with pytest.raises(ValueError, match=re.escape("request key 'omnisift_retain': " + RETAIN.format(value))):
        request_kwargs(retain=value)


@pytest.mark.parametrize("values,message", BAD, ids=IDS)
def test_omnisift_eval(values, message, tmp_path, capsys) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n")
    argv = ["eval", "--benchmark", "worldsense", "--model", "tiny", "--questions", str(questions)]
    argv += ["--media-root", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(argv + _flags(values)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("values,message", BAD, ids=IDS)
def test_omnisift_train(values, message, tmp_path, capsys) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps({"video": "a.mp4", "conversations": [{"value": "q"}, {"value": "a"}]}) + "\n")
    argv = ["train", "--data", str(data), "--model", "tiny", "--out", str(tmp_path / "run")]
    assert main(argv + _flags(values)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("values,message", BAD, ids=IDS)
def test_omnisift_show(values, message, tmp_path, capsys) -> None:
    picture = tmp_path / "show.png"
    if "nosuch" in values:  # show runs several methods side by side: a setting none of them takes
        message = "method setting(s) nosuch are taken by none of random"
    assert main(["show", "--out", str(picture), *_flags(values)]) == 2
    assert message in capsys.readouterr().err
    assert not picture.exists()


def test_omnisift_show_names_a_bad_pixel_cap(tmp_path, capsys) -> None:
    assert main(["show", "--out", str(tmp_path / "show.png"), "--max-pixels", "0"]) == 2
    assert "max_pixels=0 is not allowed: a whole number >= 1" in capsys.readouterr().err


@pytest.mark.parametrize("value", BAD_RETAIN)
def test_omnisift_demo(value, capsys) -> None:
    assert main(["demo", "--no-gain", "--no-picture", "--retain", str(value)]) == 2
    assert RETAIN.format(value) in capsys.readouterr().err
