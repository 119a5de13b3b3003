"""Command line of the benchmarks (events, components, scaling, lens, threads, whole-run): each
writes its numbers to a JSON file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .components import run_components
from .events import PRESETS, run
from .lens import LENS_PRESETS, run_lens
from .scaling import run_scaling
from .threads import run_threads
from .whole_run import describe, kedro_command, run_whole

DESCRIPTION = "Benchmarks that write their numbers to JSON (docs/performance.md quotes them)."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m avalanche_kedro.tools.benchmark", description=DESCRIPTION
    )
    commands = parser.add_subparsers(dest="command", required=True)
    events = commands.add_parser("events", help="events sweep vs bare forward pass")
    events.add_argument("--preset", choices=sorted(PRESETS), default="embedded")
    events.add_argument("--out", type=Path, required=True, help="JSON file to write")
    events.add_argument(
        "--checkpoint",
        type=Path,
        default=Path("data/06_models/tiny-llama-benchmark"),
        help="checkpoint directory of the embedded shape (built on first use)",
    )
    events.add_argument("--gains", type=float, nargs="+", help="override the preset's gains")
    events.add_argument("--n-calibration", type=int, help="override calibration windows")
    events.add_argument("--n-analysis", type=int, help="override analysis windows")
    scaling = commands.add_parser("scaling", help="sequential vs Dask LocalCluster, whole run")
    scaling.add_argument("--out", type=Path, required=True, help="JSON file to write")
    scaling.add_argument("--n-workers", type=int, default=2)
    scaling.add_argument("--repeats", type=int, default=1)
    components = commands.add_parser("components", help="vectorized avalanches vs Python BFS")
    components.add_argument("--out", type=Path, required=True, help="JSON file to write")
    components.add_argument("--occupancy", type=float, default=0.02)
    components.add_argument("--shape", type=int, nargs=3, default=[128, 28, 256])
    lens = commands.add_parser("lens", help="streamed logit lens vs bare forward and dense lens")
    lens.add_argument("--out", type=Path, required=True, help="JSON file to write")
    lens.add_argument("--preset", choices=sorted(LENS_PRESETS), default="embedded")
    lens.add_argument("--repeats", type=int, default=3)
    lens.add_argument("--device", default="cpu")
    threads = commands.add_parser("threads", help="forward pass per torch thread count, idle/busy")
    threads.add_argument("--out", type=Path, required=True, help="JSON file to write")
    threads.add_argument("--counts", type=int, nargs="+", help="thread counts (default 1..cores)")
    threads.add_argument("--busy", type=int, default=1, help="busy-loop processes of the load")
    threads.add_argument("--rounds", type=int, default=7, help="interleaved rounds per load")
    threads.add_argument("--n-windows", type=int, default=32, help="windows of 256 tokens")
    threads.add_argument(
        "--checkpoint",
        type=Path,
        default=Path("data/06_models/tiny-llama-benchmark"),
        help="checkpoint directory of the embedded shape (built on first use)",
    )
    whole = commands.add_parser("whole-run", help="a whole kedro run: per-node CPU, wall, tokens")
    whole.add_argument("--out", type=Path, required=True, help="JSON file to write")
    whole.add_argument(
        "--project",
        type=Path,
        help="project folder to run in (default: this one); with "
        "--from-manifest, the checkout whose git state to record",
    )
    whole.add_argument("--env", help="kedro run --env")
    whole.add_argument("--params", help="kedro run --params (e.g. runtime.torch_threads=1)")
    whole.add_argument("--pipelines", help="kedro run --pipelines")
    whole.add_argument("--nodes", help="kedro run --nodes (e.g. one node on an earlier run's data)")
    whole.add_argument("--runner", help="kedro run --runner")
    whole.add_argument("--runner-params", help="kedro run --runner-params")
    whole.add_argument("--timeout", type=float, help="seconds before the run is stopped")
    whole.add_argument(
        "--from-manifest", type=Path, help="summarise this run manifest instead of running"
    )
    args = parser.parse_args(argv)

    if args.command == "whole-run":
        if args.from_manifest:
            manifest = json.loads(args.from_manifest.read_text())
            result = describe(manifest, args.from_manifest, args.project)
        else:
            command = kedro_command(
                args.env,
                args.params,
                args.pipelines,
                args.runner,
                args.runner_params,
                nodes=args.nodes,
            )
            result = run_whole(args.project or Path("."), command, args.env, args.timeout)
        summary = {
            "status": result["run"]["status"],
            "totals": result["totals"],
            "top_nodes_by_cpu": {k: result["nodes"][k] for k in list(result["nodes"])[:5]},
        }
    elif args.command == "threads":
        result = run_threads(
            args.checkpoint, args.counts, args.busy, args.rounds, n_windows=args.n_windows
        )
        summary = {
            load: {t: v["median_wall_seconds"] for t, v in entry["threads"].items()}
            for load, entry in result["loads"].items()
        }
    elif args.command == "lens":
        result = run_lens(dict(LENS_PRESETS[args.preset]), args.repeats, args.device)
        summary = {k: result[k] for k in ("median_seconds", "ratio_to_bare_forward")}
    elif args.command == "scaling":
        result = run_scaling(Path.cwd(), args.n_workers, args.repeats)
        summary = result
    elif args.command == "components":
        result = run_components(tuple(args.shape), args.occupancy)
        summary = {k: v for k, v in result.items() if k.endswith(("speedup", "seconds"))}
    else:
        preset = dict(PRESETS[args.preset])
        if args.gains:
            preset["gains"] = args.gains
        if args.n_calibration:
            preset["n_calibration"] = args.n_calibration
        if args.n_analysis:
            preset["n_analysis"] = args.n_analysis
        result = run(preset, args.checkpoint)
        summary = {
            k: result[k]
            for k in (
                "model",
                "bare_forward_seconds",
                "events_sweep_seconds",
                "ratio_sweep_over_bare",
                "sweep_tokens_per_second",
                "peak_rss_bytes_sweep_phase",
            )
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
