"""Run one benchmark (or one shard of it) through a model and write a result row per question.

Rows are appended to this rank's shard file as soon as their batch finishes, so an interrupted run
resumes where it stopped (finished ids are read from every shard file of the benchmark). Media for
the next questions are decoded (`omnisift.media.load`) and encoded in worker processes (`--workers`)
while the model generates; consecutive questions sharing a video decode it once. A video that cannot be read, or a batch that fails, becomes error rows
with the reason and the run goes on.

Several GPUs: launch one process per GPU; each takes the questions i with i % WORLD_SIZE == RANK
(from `--shard/--num-shards` or the RANK / WORLD_SIZE variables torchrun and accelerate set) and
writes its own file; `omnisift report` merges them:

    accelerate launch --num_processes 8 -m omnisift.evaluation eval --benchmark videomme \\
        --media-root /data/Video-MME --model /ckpt/OmniSIFT-7B --method omnisift --retain 0.25 --out runs
    torchrun --nproc-per-node 8 -m omnisift.evaluation eval ...   (same arguments)
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch

from .._extras import require
from ..config import CompressionConfig
from ..inner.accounting import stats_fields
from ..inputs import Protocol, collate, count_media_tokens, effective_protocol, encode, load_video
from ..media import Media, MediaError, configure_worker_threads
from ..methods import method_settings
from ..protocols import protocol_label
from .benchmarks import Question, canonical_name, check_media, load_benchmark
from .choices import extract_choice
from .loading import CompressedModel, is_tiny, load_compressed
from .results import ResultWriter, finished_ids, merge_rows, read_rows, shard_path
from .run_identity import claim_run, describe, file_sha256
from .run_lock import hold_shard

__all__ = ["EvalConfig", "RunOutcome", "default_run_name", "generate_batch", "resolve_shard", "run_eval"]

logger = logging.getLogger(__name__)

_ABORT_AFTER = 3  # consecutive failed generations with no success yet: a setup problem, not bad data


@dataclass
class EvalConfig:
    """One `omnisift eval` invocation (see `omnisift eval --help` for the meaning of each field)."""

    benchmark: str
    questions: Path
    model: str
    out: Path
    media_root: Path | None = None
    compression: CompressionConfig | None = None
    """What to compress (method with its settings, budget); None evaluates with full tokens."""
    run_name: str | None = None
    batch_size: int = 1
    limit: int | None = None
    skip_missing: bool = False
    shard: int | None = None
    num_shards: int | None = None
    retry_errors: bool = False
    protocol: Protocol = field(default_factory=Protocol)
    device: str | None = None
    dtype: str | None = None
    processor: str | None = None
    workers: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        check_config(self)


# Settings that decide where rows go or how fast they come, never what an answer is. Every other
# field (present or added later) is part of a run's identity.
OPERATIONAL_FIELDS = frozenset(
    {
        "out",
        "run_name",
        "questions",
        "batch_size",
        "limit",
        "skip_missing",
        "shard",
        "num_shards",
        "retry_errors",
        "device",
        "workers",
        "progress",
    }
)


def _is_plain_name(name: str) -> bool:
    """A single folder name: no separator, not '.', '..' or empty, so the run stays inside --out."""
    return bool(name.strip()) and name not in (".", "..") and not any(c in name for c in "/\\\0")


def check_config(config: EvalConfig) -> None:
    """Refuse values that would silently run something else than asked, before any work starts (the
    protocol's own settings are checked where they are defined: `Protocol`, `SamplingConfig`)."""
    problems = []
    if config.limit is not None and config.limit < 1:
        problems.append(f"--limit must be at least 1 (got {config.limit}); leave it out for every question")
    if config.batch_size < 1:
        problems.append(f"--batch-size must be at least 1 (got {config.batch_size})")
    if config.workers < 0:
        problems.append(f"--workers must be 0 or more (got {config.workers})")
    if config.run_name is not None and not _is_plain_name(config.run_name):
        problems.append(
            f"--run-name must be one folder name inside --out (no '/', '\\', '..' or absolute path), got "
            f"{config.run_name!r}"
        )
    if problems:
        raise ValueError("; ".join(problems))


@dataclass
class RunOutcome:
    """Where the rows went and what this invocation did."""

    bench_dir: Path
    shard_file: Path
    written: int = 0
    errors: int = 0
    already_done: int = 0
    skipped_missing: int = 0


def resolve_shard(shard: int | None = None, num_shards: int | None = None) -> tuple[int, int]:
    """(rank, world size) from the arguments, else from RANK / WORLD_SIZE (torchrun, accelerate)."""
    world = num_shards if num_shards is not None else int(os.environ.get("WORLD_SIZE", "1"))
    rank = shard if shard is not None else int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard {rank} is not in [0, {world}); pass --shard in 0..--num-shards-1")
    return rank, world


def default_run_name(model: str, compression: CompressionConfig | None) -> str:
    """Folder name of a run: model tag plus method setting, e.g. "Qwen2.5-Omni-7B__omnisift-retain0.25"
    (settings that differ from the method's defaults are named too: "omnizip-knn3-retain0.25")."""
    tag = model if is_tiny(model) else Path(model).resolve().name
    if compression is None:
        return f"{tag}__full"
    method = compression.method
    defaults = method_settings(type(method)())
    changed = [
        f"{key}{value:g}" if isinstance(value, float) else f"{key}{value}"
        for key, value in method_settings(method).items()
        if key not in ("name", "selector") and value != defaults.get(key)
    ]
    budget = (
        f"retain{compression.retain:g}"
        if compression.retain is not None
        else f"v{compression.video_drop:g}-a{compression.audio_drop:g}"
    )
    if compression.budget is not None:
        budget += f"-{compression.budget}"
    return f"{tag}__" + "-".join([method.name, *changed, budget])


def identity_of(config: EvalConfig, protocol: Protocol) -> dict[str, Any]:
    """Everything that can change an answer: the whole config minus `OPERATIONAL_FIELDS`, with the
    effective protocol, the model folder resolved and the question file by content."""
    identity = {k: v for k, v in describe(config).items() if k not in OPERATIONAL_FIELDS}
    identity["benchmark"] = canonical_name(config.benchmark)
    identity["model"] = config.model if is_tiny(config.model) else str(Path(config.model).resolve())
    identity["protocol"] = describe(protocol)
    identity["questions_sha256"] = file_sha256(_question_file(config.questions))
    selector = _selector_path(config)
    if selector is not None and selector.is_file():  # a retrained selector at the same path
        identity["selector_sha256"] = file_sha256(selector)
    return identity


def _selector_path(config: EvalConfig) -> Path | None:
    selector = getattr(config.compression.method, "selector", None) if config.compression else None
    return Path(selector).resolve() if isinstance(selector, (str, Path)) else None


def _question_file(path: Path) -> Path:
    path = Path(path)
    return path / "data.jsonl" if path.is_dir() else path


def _meta(config: EvalConfig, protocol: Protocol) -> dict[str, Any]:
    """What the report reads besides the identity (labels, versions, when)."""
    import transformers

    compression = config.compression
    selector = _selector_path(config)
    return {
        "benchmark": canonical_name(config.benchmark),
        "model": config.model if is_tiny(config.model) else str(Path(config.model).resolve()),
        "model_label": f"{config.model} (random weights)"
        if is_tiny(config.model)
        else Path(config.model).name,
        "random_weights": is_tiny(config.model),
        "method": compression.method_name if compression else "none",
        "video_drop": compression.video_drop if compression else 0.0,
        "audio_drop": compression.audio_drop if compression else 0.0,
        "retain": compression.retain if compression else None,
        "budget": compression.budget if compression else None,
        "selector": str(selector)
        if selector
        else ("random (tiny model)" if is_tiny(config.model) and compression else None),
        "compression": compression.to_dict() if compression else None,
        "protocol": protocol.as_dict(),
        "protocol_preset": config.protocol.preset,
        "protocol_label": protocol_label(config.protocol, config.benchmark),
        "questions": str(_question_file(config.questions)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


@dataclass
class _Prepared:
    question: Question
    inputs: dict[str, Any] | None = None
    video: dict[str, Any] | None = None  # what was sampled (frames themselves are not kept)
    error: str | None = None
    decode_s: float = 0.0
    encode_s: float = 0.0
    pid: int = field(default_factory=os.getpid)  # the process that prepared it (a worker or this one)


def _video_info(video: Media) -> dict[str, Any]:
    """What a row records about its media: frames, rate, and kept audio seconds vs media seconds."""
    return {
        "frames": video.num_frames,
        "fps": round(video.fps, 6),
        "duration": round(video.duration, 3),
        "has_audio": video.audio is not None,
        "audio_seconds": None if video.audio is None else round(video.audio_seconds, 3),
        "audio_seconds_dropped": round(video.audio_seconds_dropped, 3),
    }


def _runs_of_same_media(questions: list[Question]) -> list[list[Question]]:
    """Consecutive questions on one video form one job, so that video is decoded once."""
    groups: list[list[Question]] = []
    for question in questions:
        if groups and groups[-1][0].media == question.media:
            groups[-1].append(question)
        else:
            groups.append([question])
    return groups


def _prepare(
    questions: list[Question], processor: Any, protocol: Protocol, dtype: torch.dtype, threads: int | None
) -> list[_Prepared]:
    """Decode one video and encode each of its questions; pixel and audio features go to the model dtype
    here so prepared samples waiting for their batch (and crossing from a worker) hold half the bytes in
    bf16. Failures become the questions' error reasons."""
    start = time.perf_counter()
    try:
        video = load_video(questions[0].media, protocol, threads=threads)
    except MediaError as exc:
        return [_Prepared(q, error=str(exc), decode_s=time.perf_counter() - start) for q in questions]
    decode_s = time.perf_counter() - start
    info = _video_info(video)
    out = []
    for i, question in enumerate(questions):
        prepared = _Prepared(question, video=info, decode_s=decode_s if i == 0 else 0.0)
        start = time.perf_counter()
        try:
            inputs = encode(processor, video, question.prompt, protocol)
            for key in ("pixel_values_videos", "input_features"):
                if key in inputs and inputs[key].is_floating_point():
                    inputs[key] = inputs[key].to(dtype)
            prepared.inputs = inputs
        except Exception as exc:  # noqa: BLE001 - any failure on one video becomes its error row
            logger.debug("preparing %s failed", question.id, exc_info=True)
            prepared.error = f"{type(exc).__name__}: {exc}"
        prepared.encode_s = time.perf_counter() - start
        out.append(prepared)
    return out


_WORKER: dict[str, Any] = {}  # a prefetch worker process's processor, protocol, dtype and decoder threads


def _init_worker(processor: Any, protocol: Protocol, dtype: torch.dtype, workers: int) -> None:
    threads = configure_worker_threads(workers)
    _WORKER.update(processor=processor, protocol=protocol, dtype=dtype, threads=threads)


def _prepare_in_worker(questions: list[Question]) -> list[_Prepared]:
    return _prepare(questions, **_WORKER)


def _worker_started() -> bool:
    """A no-op task: its completion tells the main process that a worker is up (imports done)."""
    return True


def _prefetch(
    questions: list[Question], loaded: CompressedModel, protocol: Protocol, workers: int
) -> Iterator[_Prepared]:
    """Prepared questions in order. With `workers` > 0, worker processes decode and encode the next
    videos while the model runs (processes, not threads: decoding and the processor's numpy work would
    otherwise share the model's interpreter and cores); up to `workers + 1` videos are in flight, which
    bounds memory. Workers are spawned (not forked: a fork of a process whose torch thread pool is up
    can hang) and get one torch thread each (`omnisift.media.configure_worker_threads`). A spawned worker
    needs seconds of imports before its first video, so until one is up the videos are prepared here:
    the model is not left waiting at the start of a run."""
    dtype = next(loaded.thinker.parameters()).dtype
    groups = _runs_of_same_media(questions)
    if workers <= 0:
        for group in groups:
            yield from _prepare(group, loaded.processor, protocol, dtype, None)
        return
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(loaded.processor, protocol, dtype, workers),
    )
    # Starting a spawned worker blocks until it has imported the main module (seconds): a thread does
    # it, while this one prepares the first videos for the model.
    spawner = ThreadPoolExecutor(1, thread_name_prefix="omnisift-spawn")
    started = spawner.submit(lambda: pool.submit(_worker_started).result())
    spawner.shutdown(wait=False)
    try:
        feed = iter(groups)
        while not started.done():
            group = next(feed, None)
            if group is None:
                return
            yield from _prepare(group, loaded.processor, protocol, dtype, None)
        started.result()  # raises here if the workers could not start
        pending: deque[Future] = deque(pool.submit(_prepare_in_worker, g) for g in islice(feed, workers + 1))
        while pending:
            done = pending.popleft().result()
            following = next(feed, None)
            if following is not None:
                pending.append(pool.submit(_prepare_in_worker, following))
            yield from done
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # workers exit in the background


def _to_device(batch: dict[str, Any], device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    moved = {}
    for key, value in batch.items():
        if torch.is_tensor(value):
            value = value.to(device)
            if key in ("pixel_values_videos", "input_features") and value.is_floating_point():
                value = value.to(dtype)
        moved[key] = value
    return moved


def _generate(loaded: CompressedModel, items: list[_Prepared], protocol: Protocol) -> dict[str, Any]:
    """Run one batch; returns texts, per-sample token stats, new-token counts and timings."""
    processor = loaded.processor
    batch = collate([p.inputs for p in items], pad_id=processor.tokenizer.pad_token_id)
    use_audio = batch.pop("use_audio_in_video")
    before = count_media_tokens(
        batch["input_ids"], batch["attention_mask"], processor.video_token_id, processor.audio_token_id
    )
    dtype = next(loaded.thinker.parameters()).dtype
    inputs = _to_device(batch, loaded.device, dtype)
    handle = loaded.handle
    last_call = handle.history[-1] if handle is not None and handle.history else None
    if loaded.device.type == "cuda":
        torch.cuda.synchronize(loaded.device)
    start = time.perf_counter()
    with torch.inference_mode():
        output = loaded.thinker.generate(
            **inputs,
            use_audio_in_video=use_audio,
            max_new_tokens=protocol.max_new_tokens,
            do_sample=protocol.do_sample,
        )
    if loaded.device.type == "cuda":
        torch.cuda.synchronize(loaded.device)
    seconds = time.perf_counter() - start
    new = output[:, inputs["input_ids"].shape[1] :].cpu()
    texts = processor.batch_decode(new, skip_special_tokens=True)
    stop = {processor.tokenizer.pad_token_id, processor.tokenizer.eos_token_id}
    lengths = []
    for row in new.tolist():
        count = 0
        for token in row:
            count += 1
            if token in stop:
                break
        lengths.append(count)
    stats = None
    select_s = 0.0
    if handle is not None and handle.history and handle.history[-1] is not last_call:
        stats = handle.last_stats
        select_s = handle.last_select_seconds
    tokens = []
    for i, counts in enumerate(before):
        if stats is not None and i < len(stats):
            s = stats[i]
            tokens.append(
                {
                    "video_before": s.video_before,
                    "video_after": s.video_after,
                    "audio_before": s.audio_before,
                    "audio_after": s.audio_after,
                    **stats_fields(s),
                    "text": counts["text"],
                }
            )
        else:
            v, a = counts["video"], counts["audio"]
            tokens.append(
                {
                    "video_before": v,
                    "video_after": v,
                    "audio_before": a,
                    "audio_after": a,
                    "layer_avg_kept_video": 1.0,
                    "layer_avg_kept_audio": 1.0,
                    "prefill_flops_ratio": 1.0,
                    "text": counts["text"],
                }
            )
    return {
        "texts": texts,
        "tokens": tokens,
        "new_tokens": lengths,
        "generate_s": seconds,
        "select_s": select_s,
    }


def generate_batch(
    loaded: CompressedModel, inputs: list[dict[str, Any]], protocol: Protocol
) -> dict[str, Any]:
    """Generate for encoded samples (`omnisift.inputs.encode` outputs that agree on audio use) exactly as a run
    does: texts, per-sample token counts before/after compression, new-token counts and timings.
    For other harnesses (`omnisift.lmms_eval`), so their answers are the ones `omnisift eval` gives."""
    return _generate(loaded, [_Prepared(question=None, inputs=x) for x in inputs], protocol)  # type: ignore[arg-type]


def _row(item: _Prepared, rank: int, **extra: Any) -> dict[str, Any]:
    q = item.question
    row: dict[str, Any] = {
        "id": q.id,
        "index": q.index,
        "benchmark": q.benchmark,
        "media": str(q.media),
        "answer": q.answer if not q.open_ended else None,
        "categories": q.categories,
        "open_ended": q.open_ended,
        "rank": rank,
    }
    if q.open_ended:
        row["reference"] = q.answer
        row["events"] = list(q.events)
    if item.video is not None:
        row["video"] = item.video
    row.update(extra)
    return row


def _error_row(item: _Prepared, rank: int, reason: str) -> dict[str, Any]:
    row = _row(item, rank, status="error", error=reason, response=None, choice=None)
    row["correct"] = None if item.question.open_ended else False
    row["timings"] = {"decode_s": round(item.decode_s, 4), "encode_s": round(item.encode_s, 4)}
    return row


def fallback_choice(question: Question) -> str:
    """The option an unparsable answer scores as under `unparsable="random"`: drawn with the question's
    id as seed, so a rerun (or another shard) scores the same."""
    labels = sorted(question.options)
    digest = hashlib.sha256(f"{question.benchmark}/{question.id}".encode()).digest()
    return labels[int.from_bytes(digest[:8], "big") % len(labels)]


def _ok_rows(
    items: list[_Prepared], result: dict[str, Any], rank: int, protocol: Protocol
) -> list[dict[str, Any]]:
    rows = []
    for i, item in enumerate(items):
        q = item.question
        text = result["texts"][i]
        choice = None if q.open_ended else extract_choice(text, q.options)
        extra: dict[str, Any] = {}
        scored = choice
        if choice is None and not q.open_ended and protocol.unparsable == "random" and q.options:
            scored = extra["fallback_choice"] = fallback_choice(q)
        tokens = result["tokens"][i]
        before = tokens["video_before"] + tokens["audio_before"]
        after = tokens["video_after"] + tokens["audio_after"]
        rows.append(
            _row(
                item,
                rank,
                status="ok",
                error=None,
                response=text,
                choice=choice,
                correct=None if q.open_ended else scored == q.answer,
                tokens=tokens,
                retained=round(after / before, 6) if before else 1.0,
                new_tokens=result["new_tokens"][i],
                timings={
                    "decode_s": round(item.decode_s, 4),
                    "encode_s": round(item.encode_s, 4),
                    "generate_s": round(result["generate_s"], 4),
                    "select_s": round(result["select_s"], 5),
                    "batch_size": len(items),
                },
                **extra,
            )
        )
    return rows


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class _Tally:
    """Running accuracy and retained fraction for the progress bar."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.answered = self.correct = self.errors = 0
        self.before = self.after = 0
        for row in rows:
            self.add(row)

    def add(self, row: dict[str, Any]) -> None:
        if row.get("status") != "ok":
            self.errors += 1
        if not row.get("open_ended"):
            self.answered += 1
            self.correct += bool(row.get("correct"))
        tokens = row.get("tokens") or {}
        self.before += tokens.get("video_before", 0) + tokens.get("audio_before", 0)
        self.after += tokens.get("video_after", 0) + tokens.get("audio_after", 0)

    def postfix(self) -> dict[str, str]:
        out = {}
        if self.answered:
            out["acc"] = f"{100.0 * self.correct / self.answered:.1f}%"
        if self.before:
            out["saved"] = f"{100.0 * (1 - self.after / self.before):.0f}%"
        if self.errors:
            out["err"] = str(self.errors)
        return out


def run_eval(config: EvalConfig, loaded: CompressedModel | None = None) -> RunOutcome:
    """Evaluate one benchmark shard; resumes from rows already on disk. `loaded` reuses a model."""
    benchmark = canonical_name(config.benchmark)
    rank, world = resolve_shard(config.shard, config.num_shards)
    protocol = effective_protocol(config.protocol, config.model)
    compression = config.compression
    check_config(config)
    questions = load_benchmark(benchmark, config.questions, config.media_root)
    if config.limit is not None:
        questions = questions[: config.limit]
    available = check_media(questions, skip_missing=config.skip_missing)
    mine = [q for i, q in enumerate(questions) if i % world == rank]
    keep = {q.id for q in available}
    skipped = sum(1 for q in mine if q.id not in keep)
    mine = [q for q in mine if q.id in keep]

    require("av", "media")  # videos are decoded with PyAV: say so before a run folder is made
    run_name = config.run_name or default_run_name(config.model, compression)
    bench_dir = Path(config.out) / run_name / benchmark
    with hold_shard(shard_path(bench_dir, rank, world)):
        return _run_shard(config, loaded, benchmark, protocol, bench_dir, mine, skipped, rank, world)


def _run_shard(
    config: EvalConfig,
    loaded: CompressedModel | None,
    benchmark: str,
    protocol: Protocol,
    bench_dir: Path,
    mine: list[Question],
    skipped: int,
    rank: int,
    world: int,
) -> RunOutcome:
    """The rest of `run_eval`, under the shard's lock: what is done is read only once no one else writes."""
    compression = config.compression
    claim_run(bench_dir, identity_of(config, protocol), _meta(config, protocol))
    done = finished_ids(bench_dir, retry_errors=config.retry_errors)
    todo = [q for q in mine if q.id not in done]
    mine_ids = {q.id for q in mine}
    previous = [r for r in merge_rows(read_rows(bench_dir)) if r["id"] in mine_ids and r["id"] in done]
    outcome = RunOutcome(bench_dir, shard_path(bench_dir, rank, world), already_done=len(mine) - len(todo))
    outcome.skipped_missing = skipped
    logger.info(
        "%s shard %d/%d: %d questions, %d already done, %d to run -> %s",
        benchmark,
        rank,
        world,
        len(mine),
        outcome.already_done,
        len(todo),
        bench_dir,
    )
    if not todo:
        return outcome

    own = loaded is None
    if own:
        loaded = load_compressed(config.model, compression, config.device, config.dtype, config.processor)
    try:
        _evaluate(config, loaded, protocol, todo, previous, outcome, rank, world)
    finally:
        if own and loaded.handle is not None:
            loaded.handle.remove()
    logger.info(
        "%s shard %d/%d: wrote %d rows (%d errors) to %s",
        benchmark,
        rank,
        world,
        outcome.written,
        outcome.errors,
        outcome.shard_file,
    )
    return outcome


def _evaluate(
    config: EvalConfig,
    loaded: CompressedModel,
    protocol: Protocol,
    todo: list[Question],
    previous: list[dict[str, Any]],
    outcome: RunOutcome,
    rank: int,
    world: int,
) -> None:
    """Prefetch media, batch, generate and write rows for the questions still to do."""
    if loaded.random_weights:
        logger.warning("model %s has RANDOM WEIGHTS: scores are meaningless (demo/test only)", loaded.label)
    run_protocol = effective_protocol(protocol, config.model, loaded.processor)  # + the processor's window
    benchmark = canonical_name(config.benchmark)

    tally = _Tally(previous)
    tqdm = require("tqdm.auto", "eval").tqdm
    bar = tqdm(total=len(todo), desc=f"{benchmark} {rank + 1}/{world}", disable=not config.progress, unit="q")
    bar.set_postfix(tally.postfix())
    failures_in_a_row = 0
    any_success = bool(previous)

    with ResultWriter(outcome.shard_file) as writer:

        def emit(rows: list[dict[str, Any]]) -> None:
            for row in rows:
                writer.write(row)
                tally.add(row)
                outcome.written += 1
                outcome.errors += row["status"] != "ok"
            bar.update(len(rows))
            bar.set_postfix(tally.postfix())

        def run_batch(items: list[_Prepared]) -> None:
            nonlocal failures_in_a_row, any_success
            try:
                result = _generate(loaded, items, run_protocol)
            except Exception as exc:  # noqa: BLE001 - recorded per row; aborts below if nothing ever works
                if _is_oom(exc) and loaded.device.type == "cuda":
                    torch.cuda.empty_cache()
                if len(items) > 1:
                    logger.warning("batch of %d failed (%s); retrying one by one", len(items), exc)
                    for item in items:
                        run_batch([item])
                    return
                logger.warning(
                    "generation failed on %s: %s: %s", items[0].question.id, type(exc).__name__, exc,
                    exc_info=logger.isEnabledFor(logging.DEBUG),
                )  # fmt: skip
                emit([_error_row(items[0], rank, f"generation failed: {type(exc).__name__}: {exc}")])
                failures_in_a_row += 1
                if not any_success and failures_in_a_row >= _ABORT_AFTER:
                    raise RuntimeError(
                        f"the first {failures_in_a_row} generations all failed (last: {type(exc).__name__}: {exc}); "
                        "this looks like a setup problem (model, processor, method or device), not bad data. Fix it "
                        "and rerun (-v logs each traceback): finished rows are kept."
                    ) from exc
                return
            failures_in_a_row = 0
            any_success = True
            emit(_ok_rows(items, result, rank, protocol))

        pending: list[_Prepared] = []

        def flush_pending() -> None:
            groups: dict[bool, list[_Prepared]] = {}
            for item in pending:
                groups.setdefault(bool(item.inputs["use_audio_in_video"]), []).append(item)
            for items in groups.values():
                run_batch(items)
            pending.clear()

        for item in _prefetch(todo, loaded, run_protocol, config.workers):
            if item.error is not None:
                emit([_error_row(item, rank, item.error)])
                continue
            pending.append(item)
            if len(pending) >= config.batch_size:
                flush_pending()
        if pending:
            flush_pending()
    bar.close()
