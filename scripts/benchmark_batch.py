"""Benchmark: many videos (derivanim batch) on this machine. Videos per hour for one batch of requests at 480p15,
rendered by the local pool with 1 and with 2 workers, and by Ray tasks on a local Ray cluster (its overhead), side by
side in one run, each into a fresh folder (nothing skipped), with the machine's load before and after each.

    .venv/bin/python scripts/benchmark_batch.py                                  # 6 requests: workers 1, 2, Ray
    .venv/bin/python scripts/benchmark_batch.py --requests 20 --json reports/batch-benchmark.json
    .venv/bin/python scripts/benchmark_batch.py --no-ray                         # the local pool only

Wall time counts from the call to the manifest written: filling every line (rules filler) and rendering (workers
started, Manim imported, each scene rendered and published); for Ray, starting the local cluster is timed apart.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from derivanim.batch import BatchOptions, run_batch  # noqa: E402
from derivanim.execute import RayCluster  # noqa: E402

# Functions of every level, all different (a batch renders a repeated line once): as varied as a course.
FUNCTIONS = ("x^2", "sin(x^2)", "x^3 - 3x", "e^(-x^2)", "ln(x^2 + 1)", "x*cos(x)", "1/(1 + x^2)", "sqrt(x^2 + 1)",
             "tan(x/2)", "x^2*e^(-x)", "x^4 - 2x^2", "cos(3x)", "e^x*sin(x)", "x/(x^2 + 1)", "ln(x)", "sqrt(x)",
             "1/x", "x*ln(x)", "sin(x)^2", "atan(x)")


def load() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


def batch(requests: Path, folder: Path, **options) -> dict:
    """One batch into a fresh folder: wall seconds, videos made, and the render seconds of each."""
    before, started = load(), time.monotonic()
    result = run_batch(requests, BatchOptions(output=folder, quality="l", **options))
    wall = time.monotonic() - started
    made = [record for record in result.records if record["status"] == "ok"]
    if len(made) != len(result.records):
        raise SystemExit(f"{len(result.failed)} requests failed: {result.failed[0]['error']}")
    return {"wall_seconds": round(wall, 1), "videos": len(made), "videos_per_hour": round(3600 * len(made) / wall, 1),
            "seconds_per_video": round(wall / len(made), 1),
            "render_seconds": [record["seconds"] for record in made], "load_before": before, "load_after": load()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=6, help="requests in the batch, each a different function "
                                                                "(default: 6, at most 20)")
    parser.add_argument("--no-ray", action="store_true", help="the local pool only")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    args = parser.parse_args()
    if not 1 <= args.requests <= len(FUNCTIONS):
        parser.error(f"--requests: 1 to {len(FUNCTIONS)} (the distinct functions there are)")
    functions = list(FUNCTIONS[:args.requests])
    print(f"{args.requests} requests at 480p15 on {platform.node()}: {os.cpu_count()} cores, load {load()}")
    runs = {}
    with tempfile.TemporaryDirectory(prefix="derivanim-batch-bench-") as scratch:
        requests = Path(scratch) / "requests.txt"
        requests.write_text("".join(f"{function}\n" for function in functions), encoding="utf-8")
        setups = [("local, 1 worker", {"workers": 1}), ("local, 2 workers", {"workers": 2})]
        if not args.no_ray:
            import ray

            started = time.monotonic()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, logging_level="WARNING")
            ray_start = round(time.monotonic() - started, 1)
            setups.append(("Ray, local cluster", {"cluster": RayCluster()}))
        for number, (name, options) in enumerate(setups):
            runs[name] = batch(requests, Path(scratch) / f"out-{number}", **options)
            run = runs[name]
            print(f"  {name:<20} {run['wall_seconds']:>7.1f} s wall, {run['videos_per_hour']:>6.1f} videos/hour, "
                  f"load {run['load_before']} -> {run['load_after']}", flush=True)
    base = runs["local, 1 worker"]["wall_seconds"]
    print()
    print(f"{'':<20} {'s/video':>8} {'videos/h':>9} {'speed-up':>9}")
    for name, run in runs.items():
        print(f"{name:<20} {run['seconds_per_video']:>8.1f} {run['videos_per_hour']:>9.1f} "
              f"{base / run['wall_seconds']:>9.2f}")
    if args.json:
        report = {"command": " ".join(["scripts/benchmark_batch.py", *sys.argv[1:]]), "machine": platform.node(),
                  "cores": os.cpu_count(), "quality": "480p15 (-q l)", "functions": functions, "runs": runs,
                  **({"ray_start_seconds": ray_start} if not args.no_ray else {})}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
