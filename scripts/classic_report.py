"""The classic-function report: every textbook function of tests/classic filled, measured and dry-run, and a sample
rendered and checked frame by frame.

    .venv/bin/python scripts/classic_report.py                 # all of it into reports/classic/
    .venv/bin/python scripts/classic_report.py --renders 0     # no renders (the dry runs take ~15 min)

Writes reports/classic/summary.md (a row per function: window, x0, the readability measure, the dry run's
findings, the frame check), summary.json, and contact_sheet.png (the closing frame of every rendered video).
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from derivanim import fill  # noqa: E402
from derivanim.execute import dry_run_reports  # noqa: E402
from derivanim.grammar import parse_function  # noqa: E402
from derivanim.metrics import missing_curves, runtime_metrics  # noqa: E402
from derivanim.teaching import readability  # noqa: E402
from tests.classic import load_suite  # noqa: E402

PROGRESS_EVERY = 10  # dry runs between progress lines


def measure(suite) -> list[dict]:
    rows = []
    for classic in suite:
        animation = fill(classic.text, filler="rules")
        function = parse_function(classic.text)
        measured = readability(animation.plan, function.expr, function.variable)
        plan = animation.plan
        rows.append({
            "function": classic.text, "category": classic.category, "animation": animation,
            "window": [plan.x_min, plan.x_max], "x0": plan.x0, "y_axis": [plan.f_axis.low, plan.f_axis.high],
            "derivative": animation.derivative, "angle": round(measured.angle, 1), "relief": round(measured.relief, 3),
            "shown": round(measured.shown, 3), "readable": measured.readable, "problems": measured.problems(),
            "branches": len(plan.sweep), "open_dots": len(plan.f_dots) + len(plan.df_dots), "notes": list(plan.notes),
        })
    return rows


def dry_run(rows: list[dict], say) -> None:
    codes = {index: row["animation"].code for index, row in enumerate(rows)}
    for done, (index, report) in enumerate(dry_run_reports(codes, timeout=300), 1):
        row = rows[index]
        metrics = runtime_metrics(report, parse_function(row["function"]))
        layout = [p["name"] for p in report.get("phases", []) if p["outside_frame"] or p["text_overlaps"]]
        row["dry_run"] = {"error": report.get("error"), "missing_curves": missing_curves(report),
                          "layout_problems_in": layout, "clean": all(metrics.values())}
        if done % PROGRESS_EVERY == 0 or done == len(rows):
            say(f"dry runs: {done}/{len(rows)}")


def sample(rows: list[dict], count: int) -> list[dict]:
    """`count` functions spread over the categories (round robin, in file order)."""
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row)
    picked, round_ = [], 0
    while len(picked) < min(count, len(rows)):
        for members in by_category.values():
            if round_ < len(members) and len(picked) < count:
                picked.append(members[round_])
        round_ += 1
    return picked


def render_and_check(rows: list[dict], folder: Path, say) -> list[tuple[str, Path]]:
    from derivanim.framecheck import SceneFacts, check_video

    videos = []
    for index, row in enumerate(rows, 1):
        started = time.perf_counter()
        video = row["animation"].render(folder / f"video_{index:02d}", quality="l")
        result = check_video(video, facts=SceneFacts.from_code(row["animation"].code))
        row["frame_check"] = {"passed": result.passed, "problems": list(result.problems),
                              "render_seconds": round(time.perf_counter() - started, 1)}
        videos.append((row["function"], video))
        say(f"rendered {index}/{len(rows)}: {row['function']} ({'passed' if result.passed else 'FAILED'})")
    return videos


def contact_sheet(videos: list[tuple[str, Path]], path: Path, columns: int = 4) -> None:
    """The closing frame of every rendered video, labelled with its function, in one PNG."""
    import av
    from PIL import Image, ImageDraw

    tiles = []
    for label, video in videos:
        with av.open(str(video)) as container:
            last = None
            for frame in container.decode(video=0):
                last = frame
        tile = last.to_image().resize((427, 240))
        ImageDraw.Draw(tile).text((6, 4), label, fill=(255, 80, 80))
        tiles.append(tile)
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (427 * columns, 240 * rows))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % columns) * 427, (i // columns) * 240))
    sheet.save(path)


def markdown(rows: list[dict], seconds: float) -> str:
    readable = sum(r["readable"] for r in rows)
    dry = [r for r in rows if "dry_run" in r]
    clean = sum(r["dry_run"]["clean"] for r in dry)
    on_screen = sum(not r["dry_run"]["missing_curves"] and r["dry_run"]["error"] is None for r in dry)
    checked = [r for r in rows if "frame_check" in r]
    lines = [
        "# The classic-function suite",
        "",
        f"`.venv/bin/python scripts/classic_report.py` ({seconds / 60:.0f} min); the functions are tests/classic/functions.toml.",
        "",
        f"- Readable window and x0 (tangent 15-75 degrees on screen, f rising or falling by at least 5% of its axis "
        f"near x0, f drawn on at least half the window, no extremum or inflection point off the y-axis): "
        f"**{readable}/{len(rows)}**",
        f"- Dry run with every curve on screen where the lesson shows it (no NaN point, f in phases 2-4 and 7-8, f' "
        f"in 7-8): **{on_screen}/{len(dry)}**; clean on every metric (layout included): **{clean}/{len(dry)}**",
        f"- Rendered at 480p15 and checked frame by frame (f and f' in their panels): "
        f"**{sum(r['frame_check']['passed'] for r in checked)}/{len(checked)}**",
        "",
        "| function | category | window | x0 | y-axis | tangent | relief | f shown | branches | readable | dry run | frames |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        dry_cell = "—" if "dry_run" not in r else ("clean" if r["dry_run"]["clean"] else "; ".join(
            filter(None, [r["dry_run"]["error"], *r["dry_run"]["missing_curves"][:2],
                          *(f"layout: {p}" for p in r["dry_run"]["layout_problems_in"])])))
        frames = "—" if "frame_check" not in r else ("passed" if r["frame_check"]["passed"] else "; ".join(r["frame_check"]["problems"][:2]))
        lines.append(
            f"| `{r['function']}` | {r['category']} | [{r['window'][0]:g}, {r['window'][1]:g}] | {r['x0']:g} "
            f"| [{r['y_axis'][0]:g}, {r['y_axis'][1]:g}] | {r['angle']:.0f}° | {r['relief']:.0%} | {r['shown']:.0%} "
            f"| {r['branches']} | {'yes' if r['readable'] else 'no: ' + '; '.join(r['problems'])} | {dry_cell} | {frames} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "reports" / "classic"))
    parser.add_argument("--renders", type=int, default=20, help="functions to render and frame-check (default 20)")
    parser.add_argument("--no-dry-run", action="store_true")
    parser.add_argument("--limit", type=int, help="only the first N functions (a quick look)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    say = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    started = time.perf_counter()
    rows = measure(load_suite()[:args.limit])
    say(f"filled and measured {len(rows)} functions")
    with tempfile.TemporaryDirectory(prefix="derivanim-classic-") as scratch:
        if not args.no_dry_run:
            dry_run(rows, say)
        videos = render_and_check(sample(rows, args.renders), Path(scratch), say)
        if videos:
            contact_sheet(videos, out / "contact_sheet.png")
    seconds = time.perf_counter() - started
    (out / "summary.md").write_text(markdown(rows, seconds))
    (out / "summary.json").write_text(json.dumps(
        {"seconds": round(seconds), "rows": [{k: v for k, v in r.items() if k != "animation"} for r in rows]},
        indent=1) + "\n")
    say(f"wrote {out}/summary.md")


if __name__ == "__main__":
    main()
