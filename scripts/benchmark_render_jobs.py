"""Benchmark: one video on several cores (derivanim make --jobs N). Seconds of rendering per second of video for each
--jobs and quality, side by side, and each phase's share of a one-process render.

Each render goes through derivanim.execute as `derivanim make` does (progress followed, so --jobs 1 includes its
counting pass and --jobs N its measuring pass), into a temporary folder; wall time counts from the call to the
video in place (starting the workers and importing Manim included), CPU time sums the workers' (from their
scenes' start). A phase's share is the wall time between the progress reports of a --jobs 1 render that end its
animations; 'start-up' is what comes before the first animation (starting the worker, importing Manim, the
counting pass that typesets the scene's LaTeX), 'writing' what comes after the last (joining the partial movie
files). From the same reports, each animation's render seconds give
the time N ranges would take with skipping free (an upper bound on the speed-up N cores can give).

    .venv/bin/python scripts/benchmark_render_jobs.py                       # 480p15 and 720p30, --jobs 1 and 2
    .venv/bin/python scripts/benchmark_render_jobs.py --high --json reports/render_jobs.json   # and 1080p60
    .venv/bin/python scripts/benchmark_render_jobs.py --qualities l         # a quick check

Run it on an otherwise idle machine: a second busy process takes a core from --jobs 2.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from derivanim import fill  # noqa: E402
from derivanim.execute import Job, balanced_ranges, run_jobs  # noqa: E402

QUALITY_NAMES = {"l": "480p15", "m": "720p30", "h": "1080p60"}
PROJECTED_CORES = (2, 8, 16)


def render(code: str, quality: str, jobs: int, folder: Path) -> dict:
    """One render: its wall and CPU seconds, the video's seconds, and (from the progress reports) the wall seconds
    of each animation with its phase, of the start-up before them and of the writing after them."""
    reports: list[tuple[float, object]] = []
    job = Job(code, mode="render", quality=quality, output=folder / f"{quality}-{jobs}.mp4", jobs=jobs)
    started = time.monotonic()
    [result] = run_jobs([job], on_progress=lambda _, progress: reports.append((time.monotonic(), progress)))
    ended = time.monotonic()
    if not result.ok:
        raise SystemExit(f"the render at -q{quality} --jobs {jobs} failed: {result.error} (log: {result.log})")
    with av.open(str(result.video)) as container:
        stream = container.streams.video[0]
        video_seconds = float(stream.duration * stream.time_base)
    rendering = [(moment, progress) for moment, progress in reports if progress.step == "rendering"]
    animations, previous = [], None
    for moment, progress in rendering:
        if previous is not None and progress.animations_done > previous[1].animations_done:
            animations.append((previous[1].phase, moment - previous[0]))
        previous = (moment, progress)
    return {"wall": ended - started, "cpu": result.cpu_seconds, "video": video_seconds, "animations": animations,
            "start-up": rendering[0][0] - started if rendering else None,
            "writing": ended - rendering[-1][0] if rendering else None}


def phase_shares(one: dict) -> dict[str, float]:
    """Each phase's share of a one-process render's wall time (with start-up and writing)."""
    seconds = {"start-up": one["start-up"]}
    for phase, spent in one["animations"]:
        seconds[phase or "(no phase)"] = seconds.get(phase or "(no phase)", 0.0) + spent
    seconds["writing"] = one["writing"]
    total = sum(seconds.values())
    return {phase: spent / total for phase, spent in seconds.items()}


def projected_speedups(one: dict) -> dict[int, float]:
    """The speed-up N ranges could give over this one-process render if skipping cost nothing: start-up, then the
    slowest of N balanced ranges of the measured animations, then writing."""
    spent = [seconds for _, seconds in one["animations"]]
    total = one["start-up"] + sum(spent) + one["writing"]
    speedups = {}
    for cores in PROJECTED_CORES:
        slowest = max(sum(spent[first:last + 1]) for first, last in balanced_ranges([0.0] * len(spent), spent, cores))
        speedups[cores] = total / (one["start-up"] + slowest + one["writing"])
    return speedups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--function", default="sin(x^2)", help="the function rendered (default: sin(x^2))")
    parser.add_argument("--qualities", default="l,m", help="comma-separated: l (480p15), m (720p30), h (1080p60)")
    parser.add_argument("--high", action="store_true", help="add 1080p60 (h) to the qualities")
    parser.add_argument("--jobs", default="1,2", help="comma-separated --jobs values; the first is the baseline")
    parser.add_argument("--json", type=Path, help="also write the measurements to this file")
    args = parser.parse_args()
    qualities = args.qualities.split(",") + (["h"] if args.high and "h" not in args.qualities else [])
    jobs = [int(value) for value in args.jobs.split(",")]
    code = fill(args.function, filler="rules").code
    load = os.getloadavg()
    print(f"{args.function} on {platform.node()}: {os.cpu_count()} cores, load {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} before")
    results = {}
    with tempfile.TemporaryDirectory(prefix="derivanim-bench-") as folder:
        for quality in qualities:
            for count in jobs:
                results[quality, count] = render(code, quality, count, Path(folder))
                measured = results[quality, count]
                print(f"  -q{quality} --jobs {count}: {measured['wall']:.1f} s wall, {measured['cpu']:.1f} s CPU "
                      f"for {measured['video']:.1f} s of video", flush=True)
    print()
    print(f"{'quality':<9}" + "".join(f"{f'--jobs {count}':>12}" for count in jobs)
          + "".join(f"{f'x{count}':>8}" for count in jobs[1:]) + "   (wall seconds per second of video; speed-up)")
    for quality in qualities:
        base = results[quality, jobs[0]]
        print(f"{QUALITY_NAMES.get(quality, quality):<9}"
              + "".join(f"{results[quality, count]['wall'] / base['video']:>12.3f}" for count in jobs)
              + "".join(f"{base['wall'] / results[quality, count]['wall']:>8.2f}" for count in jobs[1:]))
    print()
    for quality in qualities:
        one = results[quality, jobs[0]]
        shares = ", ".join(f"{phase} {share:.0%}" for phase, share in phase_shares(one).items())
        projected = ", ".join(f"{cores} cores x{speedup:.2f}" for cores, speedup in projected_speedups(one).items())
        print(f"{QUALITY_NAMES.get(quality, quality)} phases (--jobs {jobs[0]}): {shares}")
        print(f"{QUALITY_NAMES.get(quality, quality)} speed-up with skipping free (upper bound): {projected}")
    print(f"load after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "function": args.function, "cores": os.cpu_count(), "load_before": load, "load_after": os.getloadavg(),
            "renders": [{"quality": quality, "jobs": count, **measured}
                        for (quality, count), measured in results.items()],
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
