"""The `omnisift` model of lmms-eval: a Qwen2.5-Omni checkpoint (or the tiny fixture) with any omnisift
method attached, answering through the same media pipeline and generation call as `omnisift eval`.

    lmms-eval --model omnisift \\
        --model_args pretrained=/ckpt/Qwen2.5-Omni-7B,method=omnisift,retain=0.25,selector=/ckpt/OmniSIFT-7B \\
        --tasks omnisift_dailyomni --include_path $(python -m omnisift.lmms_eval tasks) --batch_size 4

Each request's video is decoded with `omnisift.media` (the published protocol: 2 fps, at most 256
frames, the audio track interleaved), encoded with `omnisift.inputs`, batched and generated
with `omnisift.evaluation.runner.generate_batch`. The kept fraction of each sample and its share of
the selection time go to the task (`omnisift.lmms_eval.stats`), to lmms-eval's per-request token
counts, and to lmms-eval's throughput summary (`avg_kept_fraction`, `avg_prefill_flops_ratio`,
`avg_select_seconds`); the layer-averaged kept fraction and relative prefill FLOPs go to the task too.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from typing import Any

import torch
from lmms_eval.api.instance import GenerationResult, Instance, TokenCounts
from lmms_eval.api.model import lmms
from lmms_eval.models.model_utils.gen_metrics import log_metrics

from omnisift.evaluation.loading import load_compressed
from omnisift.evaluation.runner import generate_batch
from omnisift.inputs import DEFAULT_PRESET, Protocol, effective_protocol, encode, load_video
from omnisift.lmms_eval import stats
from omnisift.lmms_eval.settings import ModelSettings, identity, parse_model_args, protocol_for
from omnisift.media import Media, MediaError

__all__ = ["LmmsEvalModel"]

logger = logging.getLogger(__name__)

_VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")


class LmmsEvalModel(lmms):
    """lmms-eval model: `--model omnisift --model_args pretrained=PATH|tiny,method=...,retain=...`."""

    is_simple = True

    def __init__(self, pretrained: str, **kwargs: Any) -> None:
        super().__init__()
        self.settings: ModelSettings = parse_model_args({"pretrained": pretrained, **kwargs})
        compression = self.settings.compression()  # an unknown method or setting stops here
        device = self.settings.device
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import Accelerator

            self.accelerator = Accelerator()
            self._rank = self.accelerator.process_index
            self._world_size = self.accelerator.num_processes
            if device is None and torch.cuda.is_available():
                device = f"cuda:{self.accelerator.local_process_index}"
        self.loaded = load_compressed(
            self.settings.pretrained,
            compression,
            device,
            self.settings.dtype,
            self.settings.processor,
            self.settings.attn_implementation,
        )
        self.batch_size = self.settings.batch_size
        self.task_dict: dict[str, Any] = {}
        self._decoded: dict[str, Media] = {}
        # The answer cap is the task's unless model_args or a paper preset other than the default set one.
        self._own_max_new_tokens = (
            kwargs.get("max_new_tokens") is not None or self.settings.protocol.preset != DEFAULT_PRESET
        )
        self.identity = identity(self.settings)
        if self.loaded.random_weights:
            logger.warning(
                "model %s has RANDOM WEIGHTS: scores are meaningless (test only)", self.loaded.label
            )
        logger.info("omnisift lmms-eval model: %s", self.identity)

    # lmms-eval asks every model for these; omnisift answers generation tasks only.
    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(
            "the omnisift model answers generate_until tasks only (multiple choice is parsed from the answer)"
        )

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError("the omnisift model answers single-turn generate_until tasks only")

    def generate_until(self, requests: list[Instance]) -> list[GenerationResult]:
        """Answer each request; a video that cannot be read or a failed batch gives an empty answer
        (scored wrong, as an error row is by `omnisift eval`) and the run goes on."""
        results: list[GenerationResult | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            key = json.dumps([request.args[1], request.args[4]], sort_keys=True, default=str)
            groups.setdefault(key, []).append(i)
        for indices in groups.values():
            gen_kwargs = dict(requests[indices[0]].args[1])
            protocol = self._protocol_for(gen_kwargs, requests[indices[0]].args[4])
            stops = [s for s in _as_list(gen_kwargs.get("until")) if s]
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                for i, result in self._answer([requests[i] for i in chunk], protocol, stops):
                    results[chunk[i]] = result
        return results  # type: ignore[return-value]

    def _protocol_for(self, gen_kwargs: dict[str, Any], task: str) -> Protocol:
        """The preset's protocol on this task, worked out for the model (`effective_protocol`), with the
        task's answer length unless `--model_args` or a paper preset named one."""
        protocol = protocol_for(self.settings, task)
        protocol = effective_protocol(protocol, self.settings.pretrained, self.loaded.processor)
        changes: dict[str, Any] = {}
        if "max_new_tokens" in gen_kwargs and not self._own_max_new_tokens:
            changes["max_new_tokens"] = int(gen_kwargs["max_new_tokens"])
        if gen_kwargs.get("do_sample") or float(gen_kwargs.get("temperature") or 0) > 0:
            logger.warning("sampling was asked for (%s); omnisift decodes greedily as published", gen_kwargs)
        return replace(protocol, **changes)

    def _question_id(self, request: Instance) -> str:
        _, _, _, doc_id, task, split = request.args
        doc = self.task_dict.get(task, {}).get(split, [])[doc_id] if task in self.task_dict else None
        if isinstance(doc, dict) and doc.get("question_id"):
            return str(doc["question_id"])
        return f"{task}/{split}/{doc_id}"

    def _video_of(self, request: Instance) -> str:
        _, _, doc_to_visual, doc_id, task, split = request.args
        visuals = doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else []
        paths = [v for v in visuals or [] if isinstance(v, (str, os.PathLike))]
        if (
            len(paths) != 1
            or len(paths) != len(visuals)
            or not str(paths[0]).lower().endswith(_VIDEO_SUFFIXES)
        ):
            raise MediaError(
                f"task {task!r} doc {doc_id}: the omnisift model takes one video file per question, got "
                f"{[type(v).__name__ if not isinstance(v, str) else v for v in visuals or []]}"
            )
        return str(paths[0])

    def _encode(self, request: Instance, protocol: Protocol, decoded: dict[str, Media]) -> dict[str, Any]:
        """Processor inputs for one request; `decoded` keeps the last video, which consecutive questions
        on the same video share (decoded once, as `omnisift eval` does)."""
        path = self._video_of(request)
        if path not in decoded:
            decoded.clear()
            decoded[path] = load_video(path, protocol)
        inputs = encode(self.loaded.processor, decoded[path], request.args[0], protocol)
        dtype = next(self.loaded.thinker.parameters()).dtype
        for key in ("pixel_values_videos", "input_features"):
            if key in inputs and inputs[key].is_floating_point():
                inputs[key] = inputs[key].to(dtype)
        return inputs

    def _answer(
        self, requests: list[Instance], protocol: Protocol, stops: list[str]
    ) -> list[tuple[int, GenerationResult]]:
        out: list[tuple[int, GenerationResult]] = []
        by_audio: dict[bool, list[tuple[int, dict[str, Any]]]] = {}
        for i, request in enumerate(requests):
            try:
                inputs = self._encode(request, protocol, self._decoded)
            except Exception as exc:  # noqa: BLE001 - one unreadable video becomes one wrong answer
                out.append((i, self._failed(request, f"{type(exc).__name__}: {exc}")))
                continue
            by_audio.setdefault(bool(inputs["use_audio_in_video"]), []).append((i, inputs))
        for items in by_audio.values():
            out.extend(self._generate(requests, items, protocol, stops))
        return out

    def _generate(
        self,
        requests: list[Instance],
        items: list[tuple[int, dict[str, Any]]],
        protocol: Protocol,
        stops: list[str],
    ) -> list[tuple[int, GenerationResult]]:
        try:
            result = generate_batch(self.loaded, [inputs for _, inputs in items], protocol)
        except Exception as exc:  # noqa: BLE001 - retried alone, then recorded per question
            if len(items) > 1:
                logger.warning("batch of %d failed (%s); retrying one by one", len(items), exc)
                return [r for item in items for r in self._generate(requests, [item], protocol, stops)]
            i = items[0][0]
            return [(i, self._failed(requests[i], f"generation failed: {type(exc).__name__}: {exc}"))]
        share = result["select_s"] / len(items)
        out = []
        for k, (i, _) in enumerate(items):
            tokens = result["tokens"][k]
            before = tokens["video_before"] + tokens["audio_before"]
            after = tokens["video_after"] + tokens["audio_after"]
            record = stats.SampleRecord(
                kept_fraction=after / before if before else 1.0,
                video_kept=tokens["video_after"] / tokens["video_before"] if tokens["video_before"] else 1.0,
                audio_kept=tokens["audio_after"] / tokens["audio_before"] if tokens["audio_before"] else 1.0,
                select_seconds=share,
                tokens_before=before,
                tokens_after=after,
                layer_kept_tokens=tokens["layer_avg_kept_video"] * tokens["video_before"]
                + tokens["layer_avg_kept_audio"] * tokens["audio_before"],
                prefill_flops_ratio=tokens["prefill_flops_ratio"],
                protocol=stats.protocol_record(protocol),
            )
            stats.put(self._question_id(requests[i]), record)
            new_tokens = result["new_tokens"][k]
            elapsed = result["generate_s"] / len(items)
            log_metrics(
                total_elapsed_time=elapsed,
                total_gen_tokens=new_tokens,
                avg_speed=new_tokens / elapsed if elapsed > 0 else 0.0,
                additional_metrics={
                    "total_requests": 1,
                    "kept_fraction": record.kept_fraction,
                    "prefill_flops_ratio": record.prefill_flops_ratio,
                    "select_seconds": share,
                },
            )
            text = _cut(result["texts"][k], stops)
            counts = TokenCounts(input_tokens=after + tokens["text"], output_tokens=new_tokens)
            out.append((i, GenerationResult(text=text, token_counts=counts)))
        return out

    def _failed(self, request: Instance, reason: str) -> GenerationResult:
        question = self._question_id(request)
        logger.warning("%s: %s", question, reason)
        stats.put(question, stats.SampleRecord(1.0, 1.0, 1.0, 0.0, 0, 0, error=reason))
        return GenerationResult(text="", token_counts=None)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _cut(text: str, stops: list[str]) -> str:
    """The answer up to the first stop sequence the task names (lmms-eval's `until`)."""
    for stop in stops:
        index = text.find(stop)
        if index >= 0:
            text = text[:index]
    return text
