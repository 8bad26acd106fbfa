"""The command line: a thin layer over the library. Exit 0 success, 2 invalid input, 1 anything else."""

import argparse
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from derivanim.errors import DerivanimError, InvalidInput

stderr = Console(stderr=True, highlight=False, emoji=False)  # ":smile:" in an echoed input stays text

MAKE_EXAMPLES = """examples:
  derivanim make "sin(x^2)"                        out/sin_x_2.py, out/sin_x_2.mp4 (720p) and out/sin_x_2.srt
  derivanim make "x^2*e^(-x)" --quality h --format gif
  derivanim make "x^3 - 3x" -o talk/cubic.webm     named and formatted by the file given
  derivanim make "ln(x)" --no-render               only the .py
  derivanim make "tan(x)" --json                   slots, derivative, paths, repairs as JSON
  derivanim make "g(t) = t^3 - 2t"                 another name and variable
  derivanim make "Teach the product rule with x*sin(x)"   the model fills the slots of a request in words
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 like any other invalid input."""

    def error(self, message):
        raise InvalidInput(f"{self.prog}: {message}")


def _finite_number(text: str) -> float:
    """argparse type of --x0 and --window: float() also reads 'nan' and 'inf', which no window can use."""
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _positive_count(text: str) -> int:
    """argparse type of make's --jobs: a whole number, at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _make(args) -> int:
    from derivanim.api import MakeOptions, make

    options = MakeOptions(filler=args.filler, adapter=args.adapter, x0=args.x0, window=args.window, output=args.output,
                          render=not args.no_render, quality=args.quality, fmt=args.format, jobs=args.jobs)

    def before_render(animation) -> None:  # the cautions before the render, which can be stopped
        display.stem = animation.stem
        if not args.json:
            for caution in animation.cautions:
                stderr.print(f"[yellow]caution:[/] {escape(caution)}")

    with _RenderDisplay(args.quality, quiet=args.json or args.no_render) as display:
        if args.filler == "baseline" and not args.json:
            stderr.print("Generating the scene free-form ...")
        made = make(args.request, options, display.update, before_render=before_render)
    if not args.json and made.animation is not None:
        for repair in made.animation.repairs:
            stderr.print(f"[yellow]repaired:[/] {escape(repair)}")
        print(f"{made.animation.plan.name}'({made.animation.plan.variable}) = {made.animation.derivative}")
    _print_outputs(args, made)
    return 0


def _print_outputs(args, made) -> None:
    """The written files (JSON or lines), what was removed as stale, and the preview."""
    from derivanim.render import open_in_viewer

    outputs = made.outputs
    if args.json:
        print(json.dumps(made.to_dict(), indent=2))
    else:
        for path in outputs.removed:
            stderr.print(f"[yellow]removed:[/] {escape(str(path))} (made from an earlier scene of this name)")
        print(f"scene: {outputs.scene}")
        for label, path in (("video", outputs.video), ("subtitles", outputs.subtitles)):
            if path is not None:
                print(f"{label}: {path}")
    if args.preview and outputs.video is not None and not open_in_viewer(outputs.video):
        stderr.print(f"preview: no viewer can open it here (no display); the video is at {escape(str(outputs.video))}",
                     soft_wrap=True)


class _RenderDisplay:
    """Render progress on stderr: on a terminal a live line (phase, animations done of all, time left), started when
    the render's first progress arrives; otherwise (a log, a pipe) one plain line as each phase starts."""

    def __init__(self, quality: str, quiet: bool = False):
        self.quiet, self.live = quiet, stderr.is_terminal
        self.quality, self.stem = quality, "the scene"
        self.last, self.progress = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def _start(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn

        self.heading = f"Rendering {self.stem} at quality {self.quality}"
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=20),
                                 TextColumn("{task.fields[detail]}"), console=stderr, transient=True)
        self.progress.start()
        self.task = self.progress.add_task(escape(self.heading), total=1.0, detail="preparing the scene")

    def update(self, state) -> None:
        if self.quiet:
            return
        where = f"{state.phase_number}/{state.phases} {state.phase}" if state.phases else state.phase
        counted = f"{state.animations_done} of {state.animations} animations done" if state.animations else ""
        left = "" if state.seconds_left is None else f"about {_duration(state.seconds_left)} left"
        if self.live:
            if self.progress is None:
                self._start()
            title = self.heading if state.step == "rendering" else state.step[0].upper() + state.step[1:]
            self.progress.update(self.task, description=escape(f"{title}: {where}" if where else title),
                                 completed=state.fraction, detail=", ".join(filter(None, (counted, left))))
        elif (state.step, state.phase) != self.last:
            self.last = (state.step, state.phase)
            line = f"phase {where}" if state.step == "rendering" else state.step
            stderr.print(escape(line + "".join(f", {part}" for part in (counted, left) if part)), soft_wrap=True)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


DATA_EXAMPLES = """examples:
  derivanim data build                              the default corpus (537 rows) into data/corpus
  derivanim data build --check                      rebuild from data/corpus/manifest.json, compare byte for byte
  derivanim data build --size 5000 -o /tmp/big --dry-run-sample 40
  derivanim data build --instructions paraphrase -o data/paraphrase
  derivanim data import ../shared/reference/derivanimator-525 -o data/original
  derivanim data slots --corpus runs/corpus-paraphrase -o runs/slots-corpus
  derivanim data stats data/corpus --latex table.tex --figure reports/figures/corpus_levels.png
"""


def _progress(stages: dict[str, str]):
    """A Rich progress display on stderr and the callback that feeds it: callback(stage, done, total)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=stderr, transient=True)
    tasks = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stages.get(stage, stage), total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return progress, report


def _data_build(args) -> int:
    import time

    from derivanim import corpus

    out_dir = Path(args.output) if args.output else corpus.default_corpus_dir()
    manifest = args.from_manifest or (out_dir / corpus.MANIFEST if args.check else None)
    config = corpus.BuildConfig.from_manifest(manifest) if manifest else corpus.BuildConfig(
        size=args.size, seed=args.seed, instructions=args.instructions)
    dry_run = "none" if args.no_dry_run or args.check else (None if args.dry_run_all else args.dry_run_sample)
    started = time.perf_counter()
    progress, report = _progress({"catalog": "growing the catalog", "rows": "making and checking rows",
                                  "dry-run": "dry-running scenes"})
    with progress:
        result = corpus.build_corpus(config, catalog_dir=args.catalog, dry_run_rows=dry_run, jobs=args.jobs,
                                     on_progress=report, cluster=_cluster(args))
    seconds = time.perf_counter() - started
    if result.failures:
        raise corpus.CorpusInvalid(result.failures)
    if args.check:
        problems = corpus.check_corpus(out_dir, result)
        for problem in problems:
            stderr.print(f"[red]differs:[/] {escape(problem)}")
        print(f"{out_dir}: {'NOT reproduced' if problems else 'reproduced byte for byte'} "
              f"({len(result.rows)} rows rebuilt in {seconds:.0f} s)")
        return 1 if problems else 0
    stats = corpus.corpus_stats(result.by_split(), tokenizer=corpus.load_tokenizer())
    written = corpus.write_corpus(result, out_dir, stats=stats)
    Console(highlight=False).print(corpus.stats_table(stats, title=str(out_dir)))
    dry = written["validation"]["dry_run"]
    print(f"wrote {len(result.rows)} rows to {out_dir} in {seconds:.0f} s; all rows validated; "
          f"dry-run: {dry['how']} ({dry['rows']} of {dry['of']} rows)")
    return 0


def _data_catalog(args) -> int:
    from derivanim import catalog

    from derivanim.corpus import default_catalog_dir

    folder = Path(args.output) if args.output else default_catalog_dir()
    functions = catalog.generate_catalog(args.seed)
    for path, level in zip(catalog.write_catalog(functions, folder, seed=args.seed), catalog.LEVELS):
        print(f"{path}: {len(functions[level])} functions")
    return 0


def _print_stats(rows, title: str, latex: str | None = None, figure: str | None = None) -> None:
    from derivanim import corpus

    by_split = {split: [row for row in rows if row.split == split] for split in corpus.SPLITS}
    stats = corpus.corpus_stats(by_split, tokenizer=corpus.load_tokenizer())
    Console(highlight=False).print(corpus.stats_table(stats, title=title))
    if latex:
        Path(latex).write_text(corpus.stats_latex(stats, caption=f"{title} by split."), encoding="utf-8")
        print(f"LaTeX table: {latex}")
    if figure:
        print(f"figure: {corpus.stats_figure(by_split, stats, Path(figure))}")


def _data_import(args) -> int:
    from derivanim import corpus

    rows = corpus.import_original(Path(args.path))
    if args.output:
        for split, path in corpus.write_rows(rows, Path(args.output)).items():
            print(f"{path}: {sum(row.split == split for row in rows)} rows")
    _print_stats(rows, title=f"{args.path} (imported)")
    return 0


def _data_slots(args) -> int:
    from derivanim.slots_corpus import build_slots_corpus, write_slots_corpus

    counts = write_slots_corpus(build_slots_corpus(Path(args.corpus), seed=args.seed), Path(args.output))
    for key, count in counts.items():
        print(f"{key}: {count} rows")
    print(f"wrote {sum(counts.values())} rows to {args.output}")
    return 0


def _data_stats(args) -> int:
    from derivanim import corpus

    path = Path(args.path) if args.path else corpus.default_corpus_dir()
    _print_stats(corpus.load_corpus(path), title=args.path or "data/corpus", latex=args.latex, figure=args.figure)
    return 0


def _add_data_commands(commands) -> None:
    data = commands.add_parser(
        "data", help="build, import and describe the corpus",
        description="The corpus of (instruction, slots, code) rows the models are trained and evaluated on.",
        epilog=DATA_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)

    build = actions.add_parser(
        "build", help="build, validate and write a corpus",
        description="Build the corpus from the function catalog (data/functions) and a seed, validate every row, "
                    "dry-run the scenes of a sample (or all), and write train/val/test.jsonl with manifest.json. "
                    "Nothing is written if any row fails.",
        epilog=DATA_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    build.add_argument("--size", type=int, default=537, help="rows in all (default: 537, as in the paper); beyond "
                       "the catalog, random expression trees that pass verification are added")
    build.add_argument("--seed", type=int, default=0, help="decides everything random (default: 0)")
    build.add_argument("--instructions", choices=["paper", "standard", "paraphrase"], default="paper",
                       help="paper: the paper's seven formats in its proportions (default); standard: one format; "
                            "paraphrase: half the paper's, half natural phrasings (intervals, other names, no f(x) =)")
    build.add_argument("-o", "--output", default=None, help="folder (default: the project's data/corpus)")
    build.add_argument("--catalog", default=None, help="folder of the function catalog (default: data/functions)")
    build.add_argument("--dry-run-sample", type=int, default=40, metavar="K",
                       help="dry-run the scenes of K rows spread over the levels (default: 40; a scene takes 20-50 s)")
    build.add_argument("--dry-run-all", action="store_true", help="dry-run every row's scene (hours for 537 rows)")
    build.add_argument("--no-dry-run", action="store_true", help="validate rows without running any scene")
    build.add_argument("--jobs", type=int, default=1, help="dry-run processes at a time (default: 1)")
    _add_ray_option(build, "the dry runs")
    build.add_argument("--from-manifest", default=None, metavar="FILE",
                       help="take size, seed and instructions from a manifest.json")
    build.add_argument("--check", action="store_true",
                       help="rebuild from OUTPUT/manifest.json without writing, and compare with OUTPUT byte for byte")
    build.set_defaults(run=_data_build)

    catalog = actions.add_parser("catalog", help="regenerate the function catalog (data/functions/<level>.txt)",
                                 description="Write the default function catalog, 134/135/134/134 functions by level, "
                                             "from the families in derivanim.catalog and a seed.")
    catalog.add_argument("--seed", type=int, default=0, help="(default: 0)")
    catalog.add_argument("-o", "--output", default=None, help="(default: the project's data/functions)")
    catalog.set_defaults(run=_data_catalog)

    imported = actions.add_parser("import", help="read the original DerivativeAnimator corpus",
                                  description="Read train/val/test.jsonl (function, code, level) and hf_*.jsonl "
                                              "(instruction) of the original corpus into derivanim's rows; slots come "
                                              "from the rules filler. Prints its table; -o writes the rows.")
    imported.add_argument("path", help="folder of the original files")
    imported.add_argument("-o", "--output", default=None, help="write train/val/test.jsonl of rows here")
    imported.set_defaults(run=_data_import)

    slots = actions.add_parser("slots", help="the slots adapter's training rows: a corpus, words and refusals",
                               description="A built corpus's requests and slots, the same functions said in words "
                                           "('the natural log of cosine x'), and requests to refuse (code, other "
                                           "subjects, other mathematics, no function), as train/val/test.jsonl for "
                                           "`derivanim train --task slots --train ... --val ...`.")
    slots.add_argument("--corpus", required=True, help="a built corpus folder (e.g. runs/corpus-paraphrase)")
    slots.add_argument("--seed", type=int, default=0, help="(default: 0)")
    slots.add_argument("-o", "--output", required=True, help="folder for train/val/test.jsonl")
    slots.set_defaults(run=_data_slots)

    stats = actions.add_parser("stats", help="the paper's table for a corpus (ours or the original)",
                               description="Samples, average code length (characters, SmolLM2 tokens), size and "
                                           "levels per split.")
    stats.add_argument("path", nargs="?", default=None, help="corpus folder or .jsonl (default: data/corpus)")
    stats.add_argument("--latex", default=None, metavar="FILE", help="also write the table as LaTeX")
    stats.add_argument("--figure", default=None, metavar="PNG", help="also draw levels and code lengths (matplotlib)")
    stats.set_defaults(run=_data_stats)


TRAIN_EXAMPLES = """examples:
  derivanim train --task slots --out runs/slots                        LoRA on SmolLM2-135M, data/corpus
  derivanim train --task slots --data runs/corpus-paraphrase --epochs 2 --lora-r 8 --out runs/slots
  derivanim train --task freeform --out runs/freeform --quantize 4bit  the baseline; QLoRA where CUDA is
  derivanim train --resume runs/freeform                              continue a stopped run where it stopped
  derivanim train --task slots --base-model deepseek-ai/deepseek-coder-1.3b-base --out runs/ds-slots
  accelerate launch -m derivanim.train --task slots --out runs/slots   several GPUs or nodes
"""

EVAL_EXAMPLES = """examples:
  derivanim eval --systems template,template-rules --split test --out reports/test
  derivanim eval --systems baseline,template,template-rules --freeform-adapter runs/freeform --limit 5 --render
  derivanim eval --systems template,template-rules,reference --dataset ../shared/reference/derivanimator-525 \\
                 --out reports/original-test
"""


def _train(args) -> int:
    from dataclasses import fields

    from derivanim.train import TrainConfig, saved_settings, train, training_config, training_rows

    given = {setting.name: getattr(args, setting.name) for setting in fields(TrainConfig) if hasattr(args, setting.name)}
    saved = []
    if args.resume:
        if args.out and Path(args.out) != Path(args.resume):
            raise InvalidInput(f"--resume {args.resume} continues the run in its own folder; --out {args.out} differs")
        saved.append(saved_settings(args.resume, "--resume"))
    elif not args.out:
        raise InvalidInput("train: --out is required (or --resume OUT to continue a run)")
    saved += [saved_settings(path, option) for path, option in ((args.config, "--config"),
                                                                (args.from_adapter, "--from-adapter")) if path]
    config = training_config(given, *saved)
    rows_train, rows_val = training_rows(args.data, args.train, args.val)
    result = train(config, rows_train, rows_val, out_dir=args.resume or args.out, resume=bool(args.resume))
    print(f"adapter: {result.out_dir} ({result.seconds:.0f} s)")
    return 0


def _eval(args) -> int:
    from derivanim.evaluate import EvalConfig, run_eval, table_markdown

    config = EvalConfig(
        systems=tuple(s.strip() for s in args.systems.split(",") if s.strip()), split=args.split,
        dataset=Path(args.dataset) if args.dataset else None, limit=args.limit, render=args.render,
        out=Path(args.out), slots_adapter=Path(args.slots_adapter) if args.slots_adapter else None,
        freeform_adapter=Path(args.freeform_adapter) if args.freeform_adapter else None,
        baseline_scenes=Path(args.baseline_scenes) if args.baseline_scenes else None, base_model=args.base_model, scene_timeout=args.scene_timeout, baseline_batch=args.baseline_batch,
        command=args.command_line, cluster=_cluster(args),
    )
    with stderr.status("evaluating ...") as status:
        summary = run_eval(config, on_progress=lambda message: status.update(escape(message)))
    print(table_markdown(summary))
    print(f"report: {config.out}")
    return 0


BATCH_EXAMPLES = """examples:
  derivanim batch requests.txt -o course/          one request a line: course/*.py, *.mp4, *.srt, manifest.jsonl
  derivanim batch requests.jsonl -q l --workers 2  JSON lines with options of their own: {"request": "x^3", "x0": 1}
  derivanim batch requests.txt --ray               on Ray: the cluster RAY_ADDRESS names, else one started here
  derivanim batch requests.txt --ray auto --shared -o /mnt/shared/course   videos written by the nodes themselves
"""


def _cluster(args):
    """The Ray cluster of --ray [ADDRESS] (and --shared), or None for this machine."""
    from derivanim.execute import RayCluster

    if args.ray is None:
        if getattr(args, "shared", False):
            raise InvalidInput("--shared is for a Ray cluster's nodes: give --ray too")
        return None
    return RayCluster(address=args.ray or None, shared=getattr(args, "shared", False))


def _add_ray_option(parser, what: str) -> None:
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help=f"run {what} as Ray tasks (pip install 'derivanim[ray]'): on the cluster at ADDRESS "
                             "('auto', 'ray://head:10001'), else the one RAY_ADDRESS names, else one started here")


def _batch(args) -> int:
    from rich.progress import BarColumn, Progress, TextColumn

    from derivanim.batch import BatchOptions, run_batch

    options = BatchOptions(output=args.output, filler=args.filler, adapter=args.adapter, quality=args.quality,
                           fmt=args.format, jobs=args.jobs, workers=args.workers, timeout=args.timeout,
                           cluster=_cluster(args))
    progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[tally]}"),
                        console=stderr, transient=True)
    task = progress.add_task("filling", total=None, tally="")

    def update(state, record) -> None:
        if record is not None:  # each settled line, above the bar (and the whole story in a log)
            made = f"-> {record['video']}" if record["status"] == "ok" else f"failed: {record['error']}"
            progress.console.print(escape(f"line {record['line']} {record['request']!r} {made}"), soft_wrap=True)
        left = "" if state.seconds_left is None else f", about {_duration(state.seconds_left)} left"
        tally = (f"{state.done} of {state.total} lines filled" if state.stage == "filling" else
                 f"done {state.done}, failed {state.failed}, remaining {state.remaining}{left}")
        progress.update(task, description=state.stage, completed=state.done + state.failed, total=state.total,
                        tally=tally)

    with progress:
        result = run_batch(args.requests, options, update)
    failed = len(result.failed)
    print(f"{len(result.records) - failed} of {len(result.records)} lines made ({result.skipped} made before), "
          f"{failed} failed; manifest: {result.manifest}")
    return 1 if failed else 0


def _add_batch_command(commands) -> None:
    batch = commands.add_parser(
        "batch", help="make the animations of many requests, in parallel, resumable",
        description="Fill every line of a requests file (one request a line, or JSON lines with their own options: "
                    "request, filler, x0, window, quality, format, name), then render the scenes in parallel into "
                    "one folder with manifest.jsonl (request, slots, derivative, repairs, cautions, files, seconds, "
                    "status, error). A rerun skips what is already made (same scene code and render options); a "
                    "line that fails is recorded and the rest go on; exit status 1 if any line failed.",
        epilog=BATCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("requests", help="the requests file")
    batch.add_argument("-o", "--output", default="batch", metavar="FOLDER", help="(default: batch)")
    batch.add_argument("-q", "--quality", choices=["l", "m", "h", "k"], default="m",
                       help="480p15, 720p30 (default), 1080p60 or 2160p60")
    batch.add_argument("--format", choices=["mp4", "gif", "webm"], default="mp4", help="(default: mp4)")
    batch.add_argument("--filler", choices=["auto", "rules", "model"], default="auto", help="as for make")
    batch.add_argument("--adapter", default=None, help="slots adapter for the model filler (default: the shipped one)")
    batch.add_argument("--jobs", type=_positive_count, default=1, metavar="N",
                       help="Manim processes per scene, as for make (default: 1)")
    batch.add_argument("--workers", type=_positive_count, default=None, metavar="N",
                       help=f"scenes rendered at once here (default: the cores / --jobs; {os.cpu_count() or 1} cores)")
    batch.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                       help="a scene that renders longer fails (default: no limit)")
    _add_ray_option(batch, "one task per scene")
    batch.add_argument("--shared", action="store_true",
                       help="with --ray: every node sees the output folder at the same path and writes its videos "
                            "there (default: videos are sent back to this machine)")
    batch.set_defaults(run=_batch)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="derivanim",
        description="Verified Manim animations that explain the derivative of a function, in eight phases.",
        epilog='Start with: derivanim make "sin(x^2)"',
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    make = commands.add_parser(
        "make", help="write the scene for a function or request, and render it",
        description="Write the DerivativeVisualization scene for a function (or a request in words) and render it.",
        epilog=MAKE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    make.add_argument("request", help='a function such as "sin(x^2)", or a request in words')
    make.add_argument("-o", "--output", default="out", metavar="FOLDER|FILE",
                      help="a folder, where the files are named after the function (sin(x^2): sin_x_2.py, "
                           "sin_x_2.mp4, sin_x_2.srt), or a file such as out/parabola.gif whose name they take "
                           "and whose suffix sets the format (default: out)")
    make.add_argument("-q", "--quality", choices=["l", "m", "h", "k"], default="m",
                      help="480p15, 720p30 (default), 1080p60 or 2160p60")
    make.add_argument("--format", choices=["mp4", "gif", "webm"], default=None,
                      help="video format (default: the -o file's suffix, else mp4); GIFs are kept to 15 frames a "
                           "second and 960 pixels wide")
    make.add_argument("--filler", choices=["auto", "rules", "model", "baseline"], default="auto",
                      help="who decides the slots: rules (SymPy), model, or auto (rules for a bare function); "
                           "baseline: the free-form model writes the whole scene, unchecked (for comparison)")
    make.add_argument("--adapter", default=None,
                      help="adapter folder for --filler model/baseline (default: the shipped slots adapter)")
    make.add_argument("--x0", type=_finite_number, default=None, metavar="X",
                      help='where the tangent starts (default: chosen for teaching; a request may say "at x = 2")')
    make.add_argument("--window", type=_finite_number, nargs=2, default=None, metavar=("A", "B"),
                      help='the x-range shown, A < B (default: chosen for teaching; a request may say "on [-2, 2]"); '
                           "both options win over the request and are checked like any choice")
    make.add_argument("--jobs", type=_positive_count, default=1, metavar="N",
                      help="Manim processes rendering the video at once, each a range of its animations, joined "
                           "into the same video one process renders (default: 1 until a speed-up is measured: on "
                           f"2 busy cores it was 0.8-1.0x at 480p; this machine has {os.cpu_count() or 1} cores)")
    make.add_argument("--no-render", action="store_true", help="write the .py only")
    make.add_argument("--preview", action="store_true",
                      help="open the video when it is ready (where no viewer can, say where it is)")
    make.add_argument("--json", action="store_true",
                      help='print a machine-readable result; errors too, as {"error": ..., "exit_code": ...}')
    make.set_defaults(run=_make)
    _add_data_commands(commands)
    _add_batch_command(commands)

    training = commands.add_parser(
        "train", help="fine-tune a LoRA adapter (slots or free-form)",
        description="Fine-tune a LoRA/QLoRA adapter on the corpus: 'slots' for the template-fill model filler, "
                    "'freeform' for the baseline that writes the whole scene.",
        epilog=TRAIN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from derivanim.train import add_arguments

    add_arguments(training)
    training.set_defaults(run=_train)

    evaluation = commands.add_parser(
        "eval", help="compare the systems on a test split by running their code",
        description="Every system writes a scene for every request of the split; each scene is parsed and run "
                    "(dry-run, and a real render with --render) and scored on the paper's metrics.",
        epilog=EVAL_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluation.add_argument("--systems", default="template,template-rules",
                            help="comma-separated: baseline, template, template-untuned (the base model, no adapter), "
                                 "template-unconstrained (no grammar), template-rules, reference")
    evaluation.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluation.add_argument("--dataset", help="corpus folder or .jsonl, or the original DerivativeAnimator folder "
                                              "(default: data/corpus)")
    evaluation.add_argument("--limit", type=int, help="only the first N requests")
    evaluation.add_argument("--render", action="store_true", help="also render every executable scene (slow)")
    _add_ray_option(evaluation, "the dry runs and renders")
    evaluation.add_argument("--out", default="reports/eval", help="report folder (default: reports/eval)")
    evaluation.add_argument("--slots-adapter", help="slots adapter for 'template' (default: the shipped one)")
    evaluation.add_argument("--freeform-adapter", help="free-form adapter for 'baseline'")
    evaluation.add_argument("--baseline-scenes", metavar="JSONL",
                            help="the baseline's scenes generated elsewhere, e.g. on a GPU (scripts/paper_on_gpu.py)")
    evaluation.add_argument("--base-model", default=None, help="base model of the adapters (default: as recorded)")
    evaluation.add_argument("--scene-timeout", type=float, default=120.0, help="seconds a scene may run (default 120)")
    evaluation.add_argument("--baseline-batch", type=int, default=16,
                            help="free-form generations decoded together (default 16; greedy either way)")
    evaluation.set_defaults(run=_eval)
    from derivanim.web.command import add_serve_command

    add_serve_command(commands)
    return parser


def _protect_expressions(argv: list[str]) -> list[str]:
    """'-x^2' is a function, not an option: a leading space keeps argparse from reading it as one (the grammar
    ignores spaces)."""
    return [f" {arg}" if re.match(r"-[^-]", arg) and re.search(r"[^\w-]|\d", arg[1:]) else arg for arg in argv]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    options = argv[:argv.index("--")] if "--" in argv else argv
    as_json = "--json" in options  # known before parsing, so that a usage error is JSON too
    try:
        args = build_parser().parse_args(_protect_expressions(argv))
        args.command_line = shlex.join(["derivanim", *argv])  # recorded in reports; the library never reads sys.argv
        return args.run(args)
    except DerivanimError as error:
        return _fail(str(error), error.exit_code, as_json)
    except KeyboardInterrupt:
        return _fail("interrupted", 130, as_json)
    except Exception as error:  # a bug of ours: still one line, and the way to see the traceback
        if os.environ.get("DERIVANIM_DEBUG"):
            raise
        return _fail(f"{type(error).__name__}: {error} (set DERIVANIM_DEBUG=1 for the traceback)", 1, as_json)


def _fail(message: str, exit_code: int, as_json: bool) -> int:
    """One line on stderr, or with --json one JSON object on stdout, where the result would have been."""
    if as_json:
        print(json.dumps({"error": message, "exit_code": exit_code}))
    else:
        stderr.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
