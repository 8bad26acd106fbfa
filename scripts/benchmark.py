"""Benchmark: how long fill() takes, and what a second of video costs to render, ours against the corpus's.

(a) fill(function, filler="rules") over every distinct function of the original DerivativeAnimator corpus,
    warm and in-process (one warm-up call first): median and p90.
(b) Render cost at 480p15 (-ql) as seconds of rendering per second of video, for derivanim's scene and for the
    corpus's reference scene (its `code` field) of the same functions. Both render the same way, through
    derivanim.execute (one worker process each, caching off, temporary folders only); wall and CPU time count
    from the scene's start, Manim's import left out.

    .venv/bin/python scripts/benchmark.py            # prints a table, writes reports/benchmark.json

Targets: fill under 100 ms median; our render cost per second of video no higher than the reference's.
Exit code 2 if the corpus folder is absent.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from derivanim import fill  # noqa: E402
from derivanim.execute import Job, run_jobs  # noqa: E402

CORPUS = ROOT / ".." / "shared" / "reference" / "derivanimator-525"
SPLITS = ("train", "val", "test")
RENDER_FUNCTIONS = ("x^2 + 5*x + 6", "x^3*sin(x)", "ln(x)")
FILL_TARGET_MS = 100.0


def corpus_rows() -> list[dict]:
    rows = []
    for split in SPLITS:
        with open(CORPUS / f"{split}.jsonl") as stream:
            rows += [json.loads(line) for line in stream]
    return rows


def time_fills(functions: list[str]) -> dict:
    """Milliseconds per fill() call, warm, in this process."""
    fill("x^2", filler="rules")  # warm-up: imports, the grammar, the template
    times, failures = [], []
    for text in functions:
        start = time.perf_counter()
        try:
            fill(text, filler="rules")
        except Exception as error:
            failures.append({"function": text, "error": f"{type(error).__name__}: {error}"})
            continue
        times.append((time.perf_counter() - start) * 1000)
    return {
        "functions": len(functions),
        "timed": len(times),
        "failures": failures,
        "median_ms": round(statistics.median(times), 2),
        "p90_ms": round(float(np.percentile(times, 90)), 2),
        "max_ms": round(max(times), 2),
        "target_median_ms": FILL_TARGET_MS,
    }


def video_seconds(path: Path) -> float:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.duration is not None:
            return float(stream.duration * stream.time_base)
        return container.duration / 1_000_000


def render(code: str, label: str) -> dict:
    """Render a scene's source at -ql; wall and CPU seconds, and the video's length."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{label}-") as scratch:
        [result] = run_jobs([Job(code, mode="render", quality="l", output=Path(scratch) / "scene.mp4")])
        if not result.ok:
            return {"ok": False, "error": result.error[:300], "wall_s": result.seconds and round(result.seconds, 2)}
        seconds = video_seconds(result.video)
        return {
            "ok": True,
            "wall_s": round(result.seconds, 2),
            "cpu_s": round(result.cpu_seconds, 2),
            "video_s": round(seconds, 2),
            "wall_per_video_s": round(result.seconds / seconds, 3),
            "cpu_per_video_s": round(result.cpu_seconds / seconds, 3),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmark.json", help="where to write the JSON")
    parser.add_argument("--no-render", action="store_true", help="only time fill()")
    args = parser.parse_args(argv)
    if not CORPUS.is_dir():
        print(f"benchmark: the reference corpus is not at {CORPUS.resolve()}", file=sys.stderr)
        return 2
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    rows = corpus_rows()
    functions = list(dict.fromkeys(row["function"] for row in rows))
    console.print(f"timing fill() over {len(functions)} distinct corpus functions ...")
    fills = time_fills(functions)

    renders = []
    if not args.no_render:
        reference_code = {row["function"]: row["code"] for row in reversed(rows)}  # the first row of each function
        for text in RENDER_FUNCTIONS:
            if text not in reference_code:
                console.print(f"[yellow]skipping {text!r}: not in the corpus[/]")
                continue
            console.print(f"rendering {text!r}: derivanim's scene, then the reference scene ...")
            ours = render(fill(text, filler="rules").code, "ours")  # alternated, so load changes hit both alike
            reference = render(reference_code[text], "reference")
            renders.append({"function": text, "ours": ours, "reference": reference})

    fill_ok = fills["median_ms"] < FILL_TARGET_MS
    table = Table(title="derivanim benchmark (fill warm in-process; renders at 480p15, caching off, Manim import not counted)")
    table.add_column("measure")
    table.add_column("derivanim", justify="right")
    table.add_column("reference (corpus code)", justify="right")
    table.add_column("target")
    table.add_row(f"fill() median over {fills['timed']} functions", f"{fills['median_ms']:.1f} ms", "-",
                  f"< {FILL_TARGET_MS:g} ms: {'met' if fill_ok else 'MISSED'}")
    table.add_row("fill() p90", f"{fills['p90_ms']:.1f} ms", "-", "")
    for item in renders:
        ours, reference = item["ours"], item["reference"]

        def cell(result):
            if not result["ok"]:
                return f"failed: {result['error'][:40]}"
            return (f"{result['wall_per_video_s']:.2f} s/s ({result['wall_s']:.0f} s for {result['video_s']:.0f} s; "
                    f"cpu {result['cpu_per_video_s']:.2f} s/s)")

        verdict = ""
        if ours["ok"] and reference["ok"]:
            verdict = "met" if ours["wall_per_video_s"] <= reference["wall_per_video_s"] else "MISSED"
        table.add_row(f"render cost {item['function']}", cell(ours), cell(reference), f"ours <= reference: {verdict}")
    console.print(table)

    both = [r for r in renders if r["ours"]["ok"] and r["reference"]["ok"]]
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "fill": fills,
        "renders": renders,
        "render_cost_mean": {
            side: round(statistics.mean(r[side]["wall_per_video_s"] for r in both), 3) for side in ("ours", "reference")
        } if both else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
