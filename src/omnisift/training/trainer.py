"""Train the OmniSIFT selector (and, with the `full` recipe, the LLM) on answer-token loss.

Built on established parts: `accelerate` (data parallel, DeepSpeed ZeRO-3, mixed precision, gradient
accumulation), torch `AdamW`, transformers' `get_cosine_schedule_with_warmup`
(warm-up 5 % by default), tqdm. One optimizer step = `grad_accum` micro-batches of `batch_size` per process.

Output folder layout:
- `train_config.json`, `train_log.jsonl` (one record per optimizer step: loss, retained fraction, lr, time)
- `checkpoints/step-NNNNNNN/`: trainable weights, optimizer, scheduler and every process's RNG state in
  safetensors + JSON (`state.py`; nothing is ever unpickled) plus `selector.safetensors`;
  `trainer_state.json` (step, settings, file sizes) is written last and marks the folder complete.
- `selector.safetensors`: the final selector under the published `thinker.compressor.*` key names
  (loads with `load_selector` and `CompressionConfig(selector=...)`).
- `final/` (full recipe only): the fine-tuned model (`save_pretrained`) with the selector keys added, the
  layout of the released OmniSIFT checkpoint (loads with `omnisift.load_pretrained`).

`resume=True` continues from the newest checkpoint that reads back whole (a broken one is skipped for
the previous, with a warning): weights, optimizer, scheduler, RNG and step are restored and the data
stream skips the batches already consumed, so the run goes on exactly as if it had not stopped. Changed
settings are refused unless `allow_changed_settings`, and then applied and listed in
`train_config.json`. A new run refuses a non-empty `out` unless `overwrite`. An unreadable video is
replaced by the next sample and counted; more than `max_bad_samples` stops the run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._extras import require
from ..config import CompressionConfig
from ..inputs import Protocol, effective_protocol
from ..loading import is_tiny, load_model
from ..output_paths import check_output_folder
from ..selector import (
    CHECKPOINT_PREFIX,
    RANDOM_SELECTOR,
    VisionGuidedAudioSelector,
    find_selector_keys,
    save_selector,
    source_selector,
)
from ..textfiles import read_json_object
from .data import (
    ConversationDataset,
    DataError,
    StreamSampler,
    check_media,
    collate_examples,
    load_examples,
    worker_init,
)
from .module import RECIPES, OmniSIFTTrainingModule, apply_recipe, check_trainable, trainable_parameters
from .state import (
    CheckpointError,
    SavedState,
    apply_state,
    file_sizes,
    read_state,
    rng_files,
    save_rng,
    save_state,
)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "RunExistsError",
    "train",
    "default_lr",
    "latest_checkpoint",
    "load_training_model",
]

logger = logging.getLogger(__name__)

TINY = "tiny"
DEFAULT_MAX_LENGTH = 32768
"""Longest sample (prompt + video + audio + answer tokens) trained on: the published recipe's max length."""
DEFAULT_LR = {"selector": 1e-4, "full": 1e-5}
SELECTOR_FILE = "selector.safetensors"
STATE_FILE = "trainer_state.json"
LOG_FILE = "train_log.jsonl"
CONFIG_FILE = "train_config.json"


@dataclass
class TrainConfig:
    """Everything a training run needs (the CLI maps its flags one to one)."""

    data: str | Path
    out: str | Path
    model: str = TINY
    media_root: str | Path | None = None
    processor: str | None = None
    recipe: str = "selector"
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    """The selector-based method (omnisift or an ablation, with its settings) and the budget trained at."""
    steps: int = 1000
    lr: float | None = None
    batch_size: int = 1
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    bf16: bool = False
    gradient_checkpointing: bool = False
    resume: bool = False
    seed: int = 0
    save_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    num_workers: int = 0
    init_selector: str | None = None
    max_length: int | None = DEFAULT_MAX_LENGTH
    """Samples longer than this many tokens are refused by name (None: no limit)."""
    attn_implementation: str = "sdpa"
    progress: bool = True
    stop_after: int | None = None
    """Stop this call after that many more optimizer steps (checkpointed; continue with `resume`)."""
    overwrite: bool = False
    """Replace the run already in `out` (without it a non-empty `out` that is not resumed is refused)."""
    allow_changed_settings: bool = False
    """On `resume`, accept settings that differ from the checkpoint's (applied and recorded)."""
    max_bad_samples: int = 10
    """Unreadable videos skipped (each replaced by the next sample) before the run stops."""

    def __post_init__(self) -> None:
        if self.recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        for name in ("steps", "batch_size", "grad_accum", "save_every", "log_every", "keep_checkpoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.stop_after is not None and (not isinstance(self.stop_after, int) or self.stop_after < 1):
            raise ValueError(f"stop_after must be a positive integer, got {self.stop_after!r}")
        if self.max_length is not None and (
            isinstance(self.max_length, bool) or not isinstance(self.max_length, int) or self.max_length < 1
        ):
            raise ValueError(
                f"max_length must be a positive integer (or None: no limit), got {self.max_length!r}"
            )
        if not isinstance(self.max_grad_norm, (int, float)) or not 0.0 <= self.max_grad_norm < math.inf:
            raise ValueError(
                f"max_grad_norm must be a finite number >= 0 (0 turns clipping off), got {self.max_grad_norm!r}"
            )
        if self.allow_changed_settings and not self.resume:
            raise ValueError(
                "allow_changed_settings (--allow-changed-settings) only applies with resume (--resume): a new run "
                "has no earlier settings to change; drop it, or add --resume to continue the run in out"
            )
        if self.num_workers < 0:
            raise ValueError("num_workers must be >= 0")
        if not isinstance(self.max_bad_samples, int) or self.max_bad_samples < 0:
            raise ValueError(f"max_bad_samples must be 0 or more, got {self.max_bad_samples!r}")
        if not isinstance(self.compression, CompressionConfig):
            raise ValueError(
                f"compression must be a CompressionConfig, got {type(self.compression).__name__}"
            )
        check_trainable(self.compression)

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else default_lr(self.recipe)

    @property
    def warmup_steps(self) -> int:
        return math.ceil(self.warmup_ratio * self.steps)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON data (what `train_config.json` records; the compression as `CompressionConfig.to_dict`)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["compression"] = self.compression.to_dict()
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in data.items()}


@dataclass
class TrainResult:
    """What a call to `train` did (records are those of the steps run in this call)."""

    out: Path
    step: int
    records: list[dict[str, Any]] = field(default_factory=list)
    selector_path: Path | None = None
    final_dir: Path | None = None
    resumed_from: Path | None = None

    @property
    def losses(self) -> list[float]:
        return [r["loss"] for r in self.records]


def default_lr(recipe: str) -> float:
    """1e-5 for the paper's full recipe; 1e-4 for the selector alone (a small, freshly initialised head)."""
    return DEFAULT_LR[recipe]


class RunExistsError(FileExistsError, RuntimeError):
    """The output folder already holds a run and `resume` was not asked for."""


class _Progress:
    """Optimizer steps done and unreadable samples skipped so far; kept in `trainer_state.json`."""

    def __init__(self) -> None:
        self.step = 0
        self.bad_samples = 0


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


def load_training_model(
    model: str,
    *,
    dtype: torch.dtype,
    processor_path: str | None = None,
    attn_implementation: str = "sdpa",
    device: torch.device | str | None = None,
) -> tuple[nn.Module, Any]:
    """Load the model (a fixture name or a checkpoint folder, without the talker) and its processor.

    `device` places the weights straight on this process's accelerator (data parallel: no full CPU copy
    per process); leave it None under DeepSpeed ZeRO-3, which partitions the weights while loading.
    """
    loaded = load_model(
        model,
        dtype=dtype,
        device=device,
        attn_implementation=attn_implementation,
        processor=processor_path,
        device_map=device is not None,
    )
    return loaded.model, loaded.processor


def _initial_selector(config: TrainConfig, hidden_size: int) -> VisionGuidedAudioSelector:
    source: str | Path | None = config.init_selector
    if source is None and not is_tiny(config.model):
        try:
            find_selector_keys(config.model)
            source = config.model
        except (FileNotFoundError, ValueError, OSError):
            source = None
    if source is not None:
        logger.info("selector initialised from %s", source)
    else:
        source = RANDOM_SELECTOR
    return source_selector(source, hidden_size=hidden_size, seed=config.seed, dtype=torch.float32)


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------


def _checkpoint_dirs(out: Path) -> list[tuple[int, Path]]:
    found = []
    for path in (out / "checkpoints").glob("step-*"):
        if (path / STATE_FILE).is_file():
            try:
                found.append((int(path.name.split("-", 1)[1]), path))
            except ValueError:
                continue
    return sorted(found)


def latest_checkpoint(out: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    found = _checkpoint_dirs(Path(out))
    return found[-1][1] if found else None


def _is_deepspeed(accelerator: Any) -> bool:
    return getattr(accelerator.state, "deepspeed_plugin", None) is not None


def _is_zero3(accelerator: Any) -> bool:
    return _is_deepspeed(accelerator) and getattr(accelerator.state.deepspeed_plugin, "zero_stage", 0) == 3


def _save_selector(accelerator: Any, module: nn.Module, path: Path) -> None:
    """Write the selector in fp32 under the published key names (collective under ZeRO-3)."""
    selector = accelerator.unwrap_model(module).compressor
    params = list(selector.parameters())
    if _is_zero3(accelerator):
        import deepspeed

        context: Any = deepspeed.zero.GatheredParameters(params, modifier_rank=None)
    else:
        import contextlib

        context = contextlib.nullcontext()
    with context:
        if accelerator.is_main_process:
            copy = VisionGuidedAudioSelector(selector.hidden_size, selector.width, selector.heads)
            copy.load_state_dict({k: v.detach().float().cpu() for k, v in selector.state_dict().items()})
            save_selector(copy, path)


def _trainable_weights(accelerator: Any, module: nn.Module) -> dict[str, torch.Tensor]:
    unwrapped = accelerator.unwrap_model(module)
    return {n: p.detach() for n, p in unwrapped.named_parameters() if p.requires_grad}


def _save_checkpoint(
    accelerator: Any,
    module: nn.Module,
    optimizer: Any,
    scheduler: Any,
    progress: _Progress,
    out: Path,
    config: TrainConfig,
) -> Path:
    """Write a checkpoint (safetensors + JSON, see `state.py`); `trainer_state.json` last marks it whole."""
    path = out / "checkpoints" / f"step-{progress.step:07d}"
    names: list[str] = []
    if _is_deepspeed(accelerator):
        logger.warning(
            "DeepSpeed checkpoints hold only the selector (DeepSpeed's own state is pickled): this run cannot "
            "be resumed; use --stop-after / --save-every without DeepSpeed for resumable runs"
        )
    else:
        if accelerator.is_main_process:
            names = save_state(
                path, _trainable_weights(accelerator, module), optimizer, scheduler, accelerator.scaler
            )
        save_rng(path, accelerator.process_index)
    _save_selector(accelerator, module, path / SELECTOR_FILE)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if not _is_deepspeed(accelerator):
            for rank in range(accelerator.num_processes):
                names.extend(rng_files(rank))
        names.append(SELECTOR_FILE)
        state = {
            "step": progress.step,
            "bad_samples": progress.bad_samples,
            "config": config.as_dict(),
            "num_processes": accelerator.num_processes,
            "resumable": not _is_deepspeed(accelerator),
            "files": file_sizes(path, names),
        }
        (path / STATE_FILE).write_text(json.dumps(state, indent=2))
        for _, old in _checkpoint_dirs(out)[: -config.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return path


# Settings that never change what is trained (how often to log or save, the progress bar, workers).
_OPERATIONAL = frozenset(
    {
        "resume",
        "progress",
        "stop_after",
        "num_workers",
        "log_every",
        "save_every",
        "keep_checkpoints",
        "overwrite",
        "allow_changed_settings",
        "max_bad_samples",
    }
)
# Settings a resumed run can never change: the data stream position and the weights depend on them.
_MUST_MATCH = ("model", "recipe", "batch_size", "grad_accum", "seed")


def _setting_changes(saved: dict[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    current = config.as_dict()
    return {
        k: (saved.get(k), current[k])
        for k in current
        if k not in _OPERATIONAL and k in saved and saved[k] != current[k]
    }


def _check_resume(
    path: Path, saved: dict[str, Any], config: TrainConfig, num_processes: int
) -> dict[str, Any]:
    """Refuse a resume whose settings differ from the checkpoint's, unless `allow_changed_settings`
    (never for the settings that fix the data stream); returns the changes to record."""
    changes = _setting_changes(saved.get("config", {}), config)
    wrong = [k for k in _MUST_MATCH if k in changes]
    if saved.get("num_processes", num_processes) != num_processes:
        wrong.append(f"num_processes ({saved['num_processes']} -> {num_processes})")
    if wrong:
        raise ValueError(
            f"cannot resume {path}: the run was started with other settings for {', '.join(wrong)}; use the "
            "same settings, or another --out for a new run"
        )
    if changes and not config.allow_changed_settings:
        listed = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changes.items())
        raise ValueError(
            f"cannot resume {path} with changed settings ({listed}): rerun with the checkpoint's settings, or "
            "pass --allow-changed-settings to apply the new ones from here on (recorded in train_config.json)"
        )
    if changes:
        logger.warning(
            "resuming %s with changed settings %s: applied from step %d on", path, changes, saved["step"]
        )
    return {k: list(v) for k, v in changes.items()}


def _load_newest_state(out: Path, rank: int) -> SavedState | None:
    """The newest checkpoint that reads back whole; a broken one is skipped for the one before it."""
    broken = []
    for _, path in reversed(_checkpoint_dirs(out)):
        try:
            saved = read_state(path, STATE_FILE, rank)
        except CheckpointError as exc:
            logger.warning("checkpoint %s is broken (%s); falling back to the previous one", path, exc)
            broken.append(str(exc))
            continue
        if broken:
            logger.warning("resuming from %s instead of the newest, broken checkpoint", path)
        return saved
    if broken:
        raise CheckpointError(
            "no checkpoint of this run can be read back: "
            + "; ".join(broken)
            + ". Delete the broken folders to "
            "start over from step 0, or restore the files"
        )
    return None


def _apply_settings(config: TrainConfig, optimizer: Any, scheduler: Any) -> None:
    """Make the optimizer follow this run's settings after a restore (a restored optimizer keeps the
    saved learning rate and weight decay otherwise); unchanged settings give the same values."""
    base = config.learning_rate
    scheduler.base_lrs = [base for _ in scheduler.base_lrs]
    lrs = [base * fn(scheduler.last_epoch) for fn in scheduler.lr_lambdas]
    for group, lr in zip(optimizer.param_groups, lrs, strict=True):
        group["initial_lr"] = base
        group["lr"] = lr
        group["weight_decay"] = config.weight_decay
    scheduler._last_lr = lrs


def _keep_log_until(out: Path, step: int) -> None:
    """Drop log records after `step` (written after the checkpoint a resume restarts from)."""
    path = out / LOG_FILE
    if not path.is_file():
        return
    kept, seen = [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill
        if isinstance(record, dict) and record.get("step", 0) <= step and record.get("step") not in seen:
            seen.add(record.get("step"))
            kept.append(line + "\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    tmp.replace(path)


def _read_run_config(out: Path) -> dict[str, Any] | None:
    return read_json_object(out / CONFIG_FILE, ValueError, "restore it, or start over with --overwrite")


def _claim_out(out: Path, config: TrainConfig) -> None:
    """A new run needs an empty --out (or --overwrite, which removes the run files there)."""
    if config.resume or not out.exists() or not any(out.iterdir()):
        return
    if not config.overwrite:
        raise RunExistsError(
            f"{out} is not empty (it holds another run: {', '.join(sorted(p.name for p in out.iterdir())[:5])}); "
            "pass --resume to continue it, --overwrite to replace it, or choose another --out"
        )
    for name in ("checkpoints", "final"):
        shutil.rmtree(out / name, ignore_errors=True)
    for name in (LOG_FILE, CONFIG_FILE, SELECTOR_FILE):
        (out / name).unlink(missing_ok=True)
    logger.warning("--overwrite: removed the previous run's files in %s", out)


# ------------------------------------------------------------------------------------------------
# Export
# ------------------------------------------------------------------------------------------------


def _export_full(accelerator: Any, module: nn.Module, processor: Any, final: Path) -> None:
    """The fine-tuned model (save_pretrained) plus the selector keys, as in the released checkpoint."""
    try:
        state = accelerator.get_state_dict(module)
    except ValueError as exc:  # ZeRO-3 without 16-bit gathering on save
        raise ValueError(
            f"{exc}. Set `zero3_save_16bit_model: true` in the accelerate DeepSpeed config (configs/zero3.yaml does)."
        ) from exc
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(module)
        model_state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
        unwrapped.model.save_pretrained(final, state_dict=model_state, safe_serialization=True)
        selector_state = {
            CHECKPOINT_PREFIX + k[len("compressor.") :]: v.detach().float().cpu().contiguous()
            for k, v in state.items()
            if k.startswith("compressor.")
        }
        from safetensors.torch import save_file

        save_file(selector_state, str(final / SELECTOR_FILE), metadata={"format": "pt"})
        index = final / "model.safetensors.index.json"
        if index.is_file():  # sharded: list the selector keys so index-based loaders find them
            data = json.loads(index.read_text())
            data["weight_map"].update({k: SELECTOR_FILE for k in selector_state})
            index.write_text(json.dumps(data, indent=2, sort_keys=True))
        try:
            processor.save_pretrained(final)
        except Exception as exc:  # noqa: BLE001 - the model is saved; the processor is a convenience
            logger.warning(
                "could not save the processor next to the model (%s); pass --processor when loading", exc
            )
    accelerator.wait_for_everyone()


# ------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------


def _make_accelerator(config: TrainConfig) -> Any:
    Accelerator = require("accelerate", "train").Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, ProjectConfiguration

    return Accelerator(
        gradient_accumulation_steps=config.grad_accum,
        # Without --bf16 the launch config decides (e.g. `mixed_precision: bf16` in configs/zero3.yaml).
        mixed_precision="bf16" if config.bf16 else None,
        project_config=ProjectConfiguration(project_dir=str(config.out)),
        # A batch whose groups have no audio to drop leaves the selector unused.
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )


def train(
    config: TrainConfig,
    *,
    model: nn.Module | None = None,
    processor: Any | None = None,
    dataset: Dataset | None = None,
    accelerator: Any | None = None,
) -> TrainResult:
    """Run (or resume) a training run; see the module docstring for what it writes.

    `model`/`processor`/`dataset` override what `config` would load (tests, custom data pipelines); a
    custom dataset must return what `ConversationDataset` returns (single-sample inputs with labels).
    """
    set_seed = require("accelerate.utils", "train").set_seed

    out = Path(config.out)
    check_output_folder(out, "--out")  # a file or read-only folder is named before anything is loaded
    if not config.resume and out.exists() and any(out.iterdir()) and not config.overwrite:
        _claim_out(out, config)  # refuses before anything is loaded
    if config.resume and _read_run_config(out) is None and not _checkpoint_dirs(out):
        raise ValueError(
            f"--resume: {out} holds no run to continue (no {CONFIG_FILE}, no checkpoint); check --out, or "
            "leave out --resume to start a new run there"
        )
    accelerator = accelerator or _make_accelerator(config)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and accelerator.num_processes == 1:
        raise RuntimeError(
            f"launched as {world} processes but accelerate sees one (each would train alone and overwrite the "
            "others' checkpoints); launch with `accelerate launch`, or on CPU set ACCELERATE_USE_CPU=1"
        )
    set_seed(config.seed)

    if dataset is None:
        examples = load_examples(config.data, config.media_root)
        check_media(examples)
    # Load after the Accelerator exists so DeepSpeed ZeRO-3 can partition the weights while loading.
    if model is None:
        dtype = torch.bfloat16 if config.bf16 and config.recipe == "selector" else torch.float32
        model, loaded_processor = load_training_model(
            config.model,
            dtype=dtype,
            processor_path=config.processor,
            attn_implementation=config.attn_implementation,
            device=None if _is_zero3(accelerator) else accelerator.device,
        )
        processor = processor or loaded_processor
    if dataset is None:
        if processor is None:
            raise ValueError("pass a processor with a custom model")
        protocol = effective_protocol(Protocol(), config.model, processor)
        dataset = ConversationDataset(examples, processor, protocol, max_length=config.max_length)

    module_init = OmniSIFTTrainingModule(
        model, _initial_selector(config, _hidden_size(model)), config.compression
    )
    try:
        return _run(config, accelerator, module_init, processor, dataset, out)
    finally:
        module_init.detach_compression()


def _run(
    config: TrainConfig,
    accelerator: Any,
    module_init: OmniSIFTTrainingModule,
    processor: Any,
    dataset: Dataset,
    out: Path,
) -> TrainResult:
    from transformers import get_cosine_schedule_with_warmup

    trainable = apply_recipe(module_init, config.recipe)
    if not trainable:
        raise ValueError(f"recipe {config.recipe!r} left no trainable parameter")
    if (
        config.recipe == "selector"
        and config.compression.audio_drop == 0
        and config.compression.retain is None
    ):
        raise ValueError(
            "no trainable parameters in use: with audio_drop=0 (and no retain) the selector never runs, so the "
            "selector recipe has nothing to train; set --audio-drop > 0 or --retain"
        )
    if config.gradient_checkpointing:
        module_init.thinker.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    params = [p for _, p in trainable_parameters(module_init)]
    n_trainable = sum(p.numel() for p in params)

    if processor is not None:
        pad_id = processor.tokenizer.pad_token_id
    else:
        pad_id = getattr(module_init.thinker.config.get_text_config(), "pad_token_id", None) or 0
    total = config.steps * config.grad_accum * config.batch_size * accelerator.num_processes
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=StreamSampler(len(dataset), total, config.seed),
        collate_fn=partial(collate_examples, pad_id=pad_id),
        num_workers=config.num_workers,
        worker_init_fn=worker_init,  # decoding workers: torch 1 thread, FFmpeg the rest
        drop_last=False,
    )
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, config.warmup_steps, config.steps)
    module, optimizer, loader = accelerator.prepare(module_init, optimizer, loader)
    progress = _Progress()
    # The scheduler is stepped here once per optimizer step (not by accelerate, which would step it once
    # per process); it is saved with the rest of the state by `state.py`.

    resumed_from = None
    changes: dict[str, Any] = {}
    recorded = _read_run_config(out)
    if config.resume:
        saved = _load_newest_state(out, accelerator.process_index)
        if saved is None:
            if recorded is not None:
                changes = _check_resume(
                    out / CONFIG_FILE, {"config": recorded, "step": 0}, config, accelerator.num_processes
                )
            logger.warning("--resume: no checkpoint in %s yet, starting from step 0", out)
        else:
            if not saved.trainer.get("resumable", True):
                raise ValueError(f"{saved.path} was written under DeepSpeed and holds no resumable state")
            changes = _check_resume(saved.path, saved.trainer, config, accelerator.num_processes)
            apply_state(saved, accelerator.unwrap_model(module), optimizer, scheduler, accelerator.scaler)
            progress.step = int(saved.trainer["step"])
            progress.bad_samples = int(saved.trainer.get("bad_samples", 0))
            resumed_from = saved.path
            logger.info("resumed from %s at step %d", resumed_from, progress.step)
        _apply_settings(config, optimizer, scheduler)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        _claim_out(out, config)
        out.mkdir(parents=True, exist_ok=True)
        if config.resume:
            _keep_log_until(out, progress.step)
        history = list((recorded or {}).get("setting_changes", [])) if config.resume else []
        if changes:
            history.append({"at_step": progress.step, "changed": changes})
        record = {**config.as_dict(), "setting_changes": history}
        (out / CONFIG_FILE).write_text(json.dumps(record, indent=2))
    accelerator.wait_for_everyone()
    logger.info(
        "training recipe=%s, %s trainable parameters, lr %.2g, %d steps (warm-up %d), %d x %d x %d samples a step",
        config.recipe,
        f"{n_trainable:,}",
        config.learning_rate,
        config.steps,
        config.warmup_steps,
        config.batch_size,
        config.grad_accum,
        accelerator.num_processes,
    )

    result = TrainResult(out=out, step=progress.step, resumed_from=resumed_from)
    if progress.step < config.steps:
        batches = loader
        if progress.step:
            batches = accelerator.skip_first_batches(loader, progress.step * config.grad_accum)
        stop = (
            config.steps
            if config.stop_after is None
            else min(config.steps, progress.step + config.stop_after)
        )
        _loop(accelerator, module, optimizer, scheduler, batches, params, progress, config, out, result, stop)

    if latest_checkpoint(out) != out / "checkpoints" / f"step-{progress.step:07d}":
        _save_checkpoint(accelerator, module, optimizer, scheduler, progress, out, config)
    result.selector_path = out / SELECTOR_FILE
    _save_selector(accelerator, module, result.selector_path)
    if config.recipe == "full" and progress.step >= config.steps:
        result.final_dir = out / "final"
        _export_full(accelerator, module, processor, result.final_dir)
    result.step = progress.step
    accelerator.wait_for_everyone()
    return result


def _hidden_size(model: nn.Module) -> int:
    from ..models import find_adapter

    return find_adapter(model).hidden_size


def _loop(
    accelerator: Any,
    module: nn.Module,
    optimizer: Any,
    scheduler: Any,
    batches: Any,
    params: list[nn.Parameter],
    progress: _Progress,
    config: TrainConfig,
    out: Path,
    result: TrainResult,
    stop: int,
) -> None:
    tqdm = require("tqdm.auto", "train").tqdm

    bar = tqdm(
        total=config.steps,
        initial=progress.step,
        desc=f"train ({config.recipe})",
        dynamic_ncols=True,
        disable=not (config.progress and accelerator.is_local_main_process),
    )
    log_path = out / LOG_FILE
    module.train()
    losses: list[torch.Tensor] = []
    retained: list[torch.Tensor] = []
    tokens = bad = 0
    started = time.perf_counter()
    for batch in batches:
        skipped = batch.pop("bad_samples", [])
        bad += len(skipped)
        for reason in skipped:
            logger.warning("skipped an unreadable sample (used the next one instead): %s", reason)
        with accelerator.accumulate(module):
            output = module(batch)
            accelerator.backward(output["loss"])
            if accelerator.sync_gradients and config.max_grad_norm > 0:
                accelerator.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        losses.append(output["loss"].detach())
        retained.append(output["retained"].detach())
        tokens += int(output["tokens"])
        if not accelerator.sync_gradients:
            continue
        lr = scheduler.get_last_lr()[0]
        scheduler.step()
        progress.step += 1
        loss = accelerator.gather(torch.stack(losses).mean().reshape(1)).mean().item()
        kept = accelerator.gather(torch.cat(retained)).mean().item()
        counts = accelerator.gather(torch.tensor([tokens, bad], device=accelerator.device).reshape(1, 2)).sum(
            0
        )
        tokens, bad = int(counts[0]), int(counts[1])
        progress.bad_samples += bad
        if progress.bad_samples > config.max_bad_samples:
            raise DataError(
                f"{progress.bad_samples} unreadable samples by step {progress.step} (more than --max-bad-samples "
                f"{config.max_bad_samples}; the log names them): fix or remove those rows, or raise the limit. "
                "Checkpoints so far are kept; continue with --resume"
            )
        seconds = time.perf_counter() - started
        record = {
            "step": progress.step,
            "loss": loss,
            "retained": kept,
            "lr": lr,
            "answer_tokens": tokens,
            "bad_samples": bad,
            "step_seconds": seconds,
        }
        result.records.append(record)
        if accelerator.is_main_process:
            with log_path.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", retained=f"{kept:.3f}", lr=f"{lr:.2e}")
        if progress.step % config.log_every == 0 or progress.step == config.steps:
            logger.info(
                "step %d/%d loss %.4f retained %.3f lr %.3g (%.2f s/step)",
                progress.step,
                config.steps,
                loss,
                kept,
                lr,
                seconds,
            )
        if progress.step % config.save_every == 0 or progress.step == stop:
            _save_checkpoint(accelerator, module, optimizer, scheduler, progress, out, config)
        losses, retained, tokens, bad = [], [], 0, 0
        started = time.perf_counter()
        if progress.step >= stop:
            break
    bar.close()
