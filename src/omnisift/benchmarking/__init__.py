"""`omnisift bench`: selection overhead and scaling, prefill speed and memory, every method's selection time.

Here "bench" means speed and memory; the question sets a model is scored on are "benchmarks" in
`omnisift.evaluation.benchmarks` (docs/design.md#terms).

Four suites, each writing JSON results and matplotlib PNG figures into ``--out`` (every figure shows
quantities measured side by side in the same run, since timings on a shared CPU drift between runs):

- ``selection`` (`selection`): `keep_mask` against the floor (the bare ``selector.v_proj`` matmul of the
  kept video tokens) and against `omnisift.testing.reference.literal_keep_mask`, the per-group Python loop
  written from docs/design.md#selection-rules the way the published code works (a loop per chunk, full-length ``nonzero`` scans,
  host syncs per chunk), for clips of 10-300 s at 252 and 880 tokens per grid, hidden 3584, fp32 and
  bf16. Timed round-robin (median of several runs after a warm-up); a least-squares fit
  ``t = a + b * tokens + c * chunks`` over both grid sizes gives the per-chunk term ``c`` of each.
- ``prefill`` (`prefill`, `prefill_worker`): latency and peak memory of a random-weight Qwen2.5-Omni
  thinker of the real 7B text shape (hidden 3584, 28 heads, 4 kv heads, intermediate 18944, head dim 128,
  M-RoPE [16, 24, 24]) cut to a few decoder layers, with tiny encoders. Merged inputs (synthetic, laid out
  like the processor's) go through ``thinker.model`` with ``input_ids`` and ``inputs_embeds``, so the real
  `attach` hooks run: full tokens without the hook, retain 0.5 / 0.35 / 0.25 with it. Each clip length
  runs in its own subprocess; peak memory is the resident-set high-water mark (``VmHWM`` of
  ``/proc/self/status``, reset through ``/proc/self/clear_refs`` just before the prefill) minus the
  resident set at that moment, so it counts activations, the KV cache and the selection's temporaries,
  not the weights. Per-layer times (forward hooks) give an extrapolation to the 28 layers of the 7B
  model. Decode: greedy steps on the KV cache the prefill left (``lm_head`` on the last position only).
- ``methods`` (`methods`): every registered method's selection time at the same budget (video_drop 0.7,
  audio_drop 0.3), next to the floor.
- ``inner`` (`inner`, run only when named): prefill time and peak memory of omnisift (at
  ``budget="layer-avg"``), seats and fastv-om at R = 0.35 / 0.25 / 0.10 on an 8-layer slice of the 7B
  shape, each row with its input and layer-averaged kept fractions and relative prefill FLOPs (SEATS' and
  FastV's layers scaled to the slice's depth, as the output says).

Figures (`figures`) need the ``bench`` extra (matplotlib); `summary` renders the JSON results as the
markdown tables of benchmarks/RESULTS.md. Run with ``omnisift bench --suite selection|prefill|methods|inner|all
--out DIR [--quick]`` or ``python -m omnisift.benchmarking ...``. Nothing here is imported by
``import omnisift``.
"""
