"""What every result file records besides its measurements: the machine, and the JSON writing itself."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["machine_info", "write_json"]

logger = logging.getLogger(__name__)


def machine_info(threads: int | None = None) -> dict[str, Any]:
    """CPU model, core count, torch threads and versions, load average (timings drift with load)."""
    cpu, flags = platform.processor() or platform.machine(), []
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        cpu = match.group(1).strip() if match else cpu
        found = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
        flags = [f for f in wanted if found and f in found.group(1).split()]
    except OSError:
        pass
    import transformers

    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_flags": flags,
        "logical_cpus": os.cpu_count(),
        "torch_threads": threads if threads is not None else torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "thp_mem_alloc": os.environ.get("THP_MEM_ALLOC_ENABLE"),
    }
    return info


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    logger.info("wrote %s", path)


def save_suite(
    out: Path,
    name: str,
    result: dict[str, Any],
    plot: Callable[[dict[str, Any], Path], None],
    figures: Path | None,
) -> dict[str, Any]:
    """Write a suite's `result` to `out/<name>.json` and its figures to `figures` (default `out/figures`)."""
    write_json(out / f"{name}.json", result)
    plot(result, figures or out / "figures")
    return result
