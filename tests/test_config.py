"""CompressionConfig: one check per setting, one message whatever the entry point, a JSON round trip."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re

import pytest
import torch

from omnisift import CompressionConfig, VisionGuidedAudioSelector, keep_mask, save_selector
from omnisift.budget import BudgetSettings
from omnisift.cli import main as omnisift_main
from omnisift.config import (
    NO_COMPRESSION,
    add_compression_arguments,
    compression_from_args,
    compression_from_settings,
)
from omnisift.lmms_eval.settings import parse_model_args
from omnisift.methods import METHODS, available_methods, get_method, method_settings, setting_fields
from omnisift.models.qwen2_5_omni import TOKEN_IDS
from omnisift.vllm.settings import ServingSettings, request_budget

BAD_BUDGETS = [
    ("retain", 1.5, r"retain must be a number in \(0, 1\]"),
    ("retain", math.nan, r"retain must be a number in \(0, 1\]"),
    ("retain", math.inf, r"retain must be a number in \(0, 1\]"),
    ("retain", 0.0, r"retain must be a number in \(0, 1\]"),
    ("video_drop", 1.0, r"video_drop must be a number in \[0, 1\)"),
    ("video_drop", -0.1, r"video_drop must be a number in \[0, 1\)"),
    ("audio_drop", math.nan, r"audio_drop must be a number in \[0, 1\)"),
    ("audio_drop", True, r"audio_drop must be a number in \[0, 1\)"),
]


def _non_default_settings(name: str) -> dict[str, object]:
    """A value differing from the default for every JSON-able setting of a method (not the selector)."""
    changed: dict[str, object] = {}
    for f in setting_fields(METHODS[name]):
        default = f.default
        if isinstance(default, bool):
            continue  # the only bool (DyCoke's kv_pruning) has one supported value
        if isinstance(default, int):
            changed[f.name] = default + 1
        elif isinstance(default, float):
            changed[f.name] = default / 2
        elif isinstance(default, tuple):
            changed[f.name] = default[:-1]
    return changed


@pytest.mark.parametrize("name", available_methods())
def test_every_method_round_trips_through_json(name: str, tmp_path) -> None:
    settings = _non_default_settings(name)
    if "selector" in {f.name for f in setting_fields(METHODS[name])}:
        settings["selector"] = str(
            save_selector(VisionGuidedAudioSelector(16, 32, 4), tmp_path / "s.safetensors")
        )
    for method in (name, get_method(name, **settings)):
        params = settings if isinstance(method, str) else {}
        config = CompressionConfig(
            method=method, video_drop=0.5, audio_drop=0.2, retain=0.4, method_params=params
        )
        back = CompressionConfig.from_dict(json.loads(json.dumps(config.to_dict())))
        assert back.to_dict() == config.to_dict()
        assert type(back.method) is type(config.method)
        assert method_settings(back.method) == method_settings(config.method)
        assert back.budget_settings == config.budget_settings == BudgetSettings(0.5, 0.2, 0.4)


def test_a_module_selector_cannot_come_back_from_a_dict() -> None:
    config = CompressionConfig(selector=VisionGuidedAudioSelector(16, 32, 4))
    with pytest.raises(ValueError, match="in-memory module.*save_selector"):
        CompressionConfig.from_dict(config.to_dict())


def test_unknown_dict_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="retian"):
        CompressionConfig.from_dict({"method": {"name": "random"}, "retian": 0.3})


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_compression_arguments(parser)
    return parser.parse_args(argv)


def _message(build) -> str:
    with pytest.raises(ValueError) as error:
        build()
    return str(error.value)


@pytest.mark.parametrize(("setting", "value", "message"), BAD_BUDGETS)
def test_a_bad_budget_reads_the_same_from_every_entry_point(setting, value, message) -> None:
    flag = "--" + setting.replace("_", "-")
    budget = {"video_drop": 0.7, "audio_drop": 0.3, "retain": None, setting: value}
    vllm = ServingSettings.from_hf_config(
        type("HF", (), {"omnisift": CompressionConfig(method="random").to_dict()})()
    )
    messages = {
        "python": _message(lambda: CompressionConfig(**{setting: value})),
        "budget": _message(lambda: BudgetSettings(**budget)),
        "lmms-eval": _message(lambda: parse_model_args({"pretrained": "tiny", setting: value})),
        "vllm request": _message(lambda: request_budget(vllm, {f"omnisift_{setting}": value})),
    }
    if not isinstance(value, bool):
        messages["cli"] = _message(lambda: compression_from_args(_parse([flag, str(value)])))
    # the vLLM request names its own key first, then says the same
    messages["vllm request"] = messages["vllm request"].removeprefix(f"request key 'omnisift_{setting}': ")
    assert len(set(messages.values())) == 1, messages
    assert all(re.search(message, m) for m in messages.values())
    assert repr(value) in next(iter(messages.values()))


def test_defaults_are_the_papers_and_unset_flags_take_them() -> None:
    config = compression_from_args(_parse([]))
    assert (config.video_drop, config.audio_drop, config.retain) == (0.7, 0.3, None)
    assert dataclasses.asdict(CompressionConfig().budget_settings) == {
        "video_drop": 0.7,
        "audio_drop": 0.3,
        "retain": None,
    }
    assert parse_model_args({"pretrained": "tiny"}).compression().to_dict() == CompressionConfig().to_dict()


@pytest.mark.parametrize("seed", [-1, 1.5, "3", True, 2**63])
def test_a_bad_seed_is_refused_with_its_range(seed) -> None:
    for build in (
        lambda: CompressionConfig(method="random", seed=seed),
        lambda: CompressionConfig(method="random", method_params={"seed": seed}),
        lambda: parse_model_args({"pretrained": "tiny", "method": "random", "seed": seed}),
    ):
        with pytest.raises(ValueError, match=r"seed must be a whole number in \[0, 2\*\*63\)"):
            build()


def test_a_seed_given_as_method_param_works_and_twice_is_refused() -> None:
    # was: TypeError "resolve_method() got multiple values for keyword argument 'seed'"
    assert compression_from_args(_parse(["--method", "random", "--method-param", "seed=3"])).method.seed == 3
    assert CompressionConfig(method="random", method_params={"seed": 3}).method.seed == 3
    with pytest.raises(ValueError, match="seed is given twice"):
        compression_from_args(_parse(["--method", "random", "--seed", "4", "--method-param", "seed=3"]))


def test_a_selector_given_as_method_param_works(tmp_path) -> None:
    path = save_selector(VisionGuidedAudioSelector(16, 32, 4), tmp_path / "s.safetensors")
    config = compression_from_args(_parse(["--method-param", f"selector={path}"]))
    assert str(config.method.selector) == str(path)


@pytest.mark.parametrize(
    ("build", "names"),
    [
        (lambda: CompressionConfig(method="omnisift", seed=3), ["omnisift", "seed=3", "random"]),
        (lambda: CompressionConfig(method="random", selector="x.safetensors"), ["random", "selector"]),
        (
            lambda: compression_from_args(_parse(["--method", "none", "--retain", "0.25"])),
            ["none", "retain=0.25"],
        ),
        (lambda: compression_from_args(_parse(["--method", "full", "--seed", "1"])), ["full", "seed=1"]),
        (lambda: compression_from_settings("none", method_params={"knn": 3}), ["none", "knn=3"]),
        (
            lambda: parse_model_args({"pretrained": "tiny", "method": "none", "retain": 0.3}).compression(),
            ["retain"],
        ),
    ],
)
def test_ignored_settings_are_refused_by_name(build, names) -> None:
    message = _message(build)
    assert all(name in message for name in names), message


def test_no_compression_takes_nothing_else() -> None:
    assert compression_from_args(_parse(["--method", "none"])) is None
    with pytest.raises(ValueError, match="no CompressionConfig"):
        CompressionConfig(method=NO_COMPRESSION[0])


def test_misspelt_vllm_request_key_is_refused() -> None:
    settings = ServingSettings.from_hf_config(type("HF", (), {"omnisift": CompressionConfig().to_dict()})())
    with pytest.raises(ValueError, match="omnisift_retian"):
        request_budget(settings, {"omnisift_retian": 0.3})


def test_the_functional_api_checks_the_budget_like_the_config() -> None:
    x = torch.zeros(1, 2, 4)
    ids = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"retain must be a number in \(0, 1\]"):
        keep_mask(
            x,
            ids,
            torch.zeros(3, 1, 2, dtype=torch.long),
            retain=math.inf,
            method="random",
            token_ids=TOKEN_IDS,
        )


@pytest.mark.parametrize("argv", [["eval"], ["train"]])
def test_commands_share_the_compression_flags(argv, capsys) -> None:
    with pytest.raises(SystemExit):
        omnisift_main([*argv, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--method", "--video-drop", "--audio-drop", "--retain", "--method-param"):
        assert flag in text
    assert "default 0.7" in text and "default 0.3" in text


def test_methods_lists_none(capsys) -> None:
    assert omnisift_main(["methods"]) == 0
    assert capsys.readouterr().out.split()[0] == "none"


def test_lmms_model_args_take_inner_llm_methods_and_the_budget_reading() -> None:
    args = {
        "pretrained": "tiny",
        "method": "seats",
        "retain": 0.25,
        "drop_layers": "[4,5,6]",
        "late_layer": 7,
    }
    config = parse_model_args(args).compression()
    assert config.method_name == "seats" and config.method.drop_layers == (4, 5, 6)
    assert config.method.late_layer == 7 and config.retain == 0.25
    fastv = parse_model_args(
        {"pretrained": "tiny", "method": "fastv-om", "retain": 0.1, "k": 3}
    ).compression()
    assert fastv.method.k == 3
    layer_avg = parse_model_args({"pretrained": "tiny", "retain": 0.25, "budget": "layer-avg"}).compression()
    assert layer_avg.budget == "layer-avg"
    with pytest.raises(ValueError, match="0.1, 0.15, 0.25, 0.35"):
        parse_model_args({"pretrained": "tiny", "method": "seats", "retain": 0.3}).compression().check()
