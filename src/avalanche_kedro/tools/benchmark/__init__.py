"""Benchmarks that write their numbers to JSON (docs/performance.md quotes them).

    python -m avalanche_kedro.tools.benchmark events --preset embedded --out docs/benchmarks/embedded-cpu.json
    python -m avalanche_kedro.tools.benchmark events --preset qwen2.5-0.5b-shape --out docs/benchmarks/qwen05b-shape-cpu.json
    python -m avalanche_kedro.tools.benchmark components --out docs/benchmarks/components-cpu.json
    python -m avalanche_kedro.tools.benchmark scaling --out docs/benchmarks/scaling-localcluster-cpu.json
    python -m avalanche_kedro.tools.benchmark threads --out docs/benchmarks/torch-threads-cpu.json
    python -m avalanche_kedro.tools.benchmark whole-run --out docs/benchmarks/whole-run-cpu.json

``events``: the events sweep against a bare forward pass of the same model on the same windows.
``scaling``: the whole embedded-default study (``kedro run --env dask``) with Kedro's
SequentialRunner and with the DaskRunner on a LocalCluster, each in a fresh project copy
(embedded models built in both), tables compared byte for byte.
``threads``: a bare forward pass of the embedded shape at each torch thread count, on an idle
machine and with busy-loop processes holding cores (why ``runtime.torch_threads`` exists).
``whole-run``: one ``kedro run`` (any project folder, e.g. a worktree of another commit), per
node its wall time, CPU time and tokens forwarded, from the run manifest.
``components``: avalanche extraction of a whole condition in one vectorized call against a
straightforward per-window Python breadth-first search (results compared for equality).

The *events sweep* is what the events pipeline does per gain: one pass over the calibration
windows that streams the top-k of v for every (spike definition, layer) and reads every target
rate's order-statistic threshold from it, then one pass over the analysis windows that counts
events per site for every (spike definition, target rate). The *bare forward* runs the same
backbone on exactly the same windows the same number of times with no hook installed. Moments
and baseline rates (the capture pipeline) are computed once beforehand and not timed.

Bare and instrumented passes are timed alternately, gain by gain, and the whole sweep is
repeated (the preset's ``repeats``); each gain's threshold fit is seeded from the previous
gain's, as the pipeline seeds them. The JSON written holds per repeat and as medians: wall and
process CPU seconds, their ratio (the instrumentation overhead; goal <= 1.05 on CPU for the
Qwen2.5-0.5B shape), the hook share of each pass (seconds inside the reductions the hooks run /
seconds of the pass), tokens per second, peak RSS of each phase, and the machine, library
versions and settings, so docs/performance.md can quote it verbatim.
"""
