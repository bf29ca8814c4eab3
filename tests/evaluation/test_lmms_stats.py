"""The lmms-eval tasks' per-sample metrics and their aggregations (plain Python, so tested in the default suite;
tests_lmms runs them inside lmms-eval)."""

from __future__ import annotations

import pytest

from omnisift.lmms_eval import stats


def test_task_metrics_carry_both_budgets_and_flops() -> None:
    inner = stats.SampleRecord(
        0.5, 0.4, 0.6, 0.01, 100, 50, layer_kept_tokens=20.0, prefill_flops_ratio=0.25
    ).task_metrics()
    pre = stats.SampleRecord(0.25, 0.2, 0.3, 0.02, 300, 75).task_metrics()  # a pre-LLM run
    assert inner["kept_fraction"] == {"before": 100, "after": 50}
    assert inner["layer_avg_kept"] == {"before": 100, "after": 20.0}
    assert pre["layer_avg_kept"] == {"before": 300, "after": 75}
    assert stats.token_weighted([inner["kept_fraction"], pre["kept_fraction"]]) == pytest.approx(125 / 400)
    assert stats.token_weighted([inner["layer_avg_kept"], pre["layer_avg_kept"]]) == pytest.approx(95 / 400)
    assert stats.mean([inner["prefill_flops_ratio"], pre["prefill_flops_ratio"]]) == pytest.approx(0.625)
    assert stats.token_weighted([]) == 1.0 and stats.mean([]) == 0.0
