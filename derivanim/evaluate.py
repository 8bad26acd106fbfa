"""`derivanim eval`: every system writes a scene for every test request; the scenes are parsed and run.

Systems: `baseline` (the free-form model writes the whole scene), `template` (the model fills the slots as
derivanim.fill does for users, SymPy verifies, the template writes the scene), and its ablations `template-untuned`
(the base model without the slots adapter, constrained: what fine-tuning adds) and `template-unconstrained` (the
slots adapter with plain greedy decoding, no grammar: what the constraint adds), `template-rules` (SymPy fills the
slots from the true function: the upper bound of the template route), `reference` (the dataset's own code, where it
has any).
Every number in the report is traceable to its case in samples.jsonl.
"""

import dataclasses
import hashlib
import json
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from derivanim import __version__
from derivanim.api import shipped_slots_adapter
from derivanim.baseline import PAPER_MAX_NEW_TOKENS, SceneGeneration
from derivanim.calculus import evaluator, simplest
from derivanim.catalog import LEVELS
from derivanim.corpus import Row, load_corpus
from derivanim.dryrun import blank_report
from derivanim.errors import DerivanimError, InvalidInput
from derivanim.execute import Job, RayCluster, dry_run_reports, run_jobs
from derivanim.grammar import ParsedFunction, parse_function
from derivanim.metrics import (DEFINITIONS, STRUCTURE_FREE, TABLE, missing_curves, runtime_metrics, static_metrics,
                               usable, usable_any_structure)
from derivanim.model import adapter_info, package_versions

SYSTEMS = ("baseline", "template", "template-untuned", "template-unconstrained", "template-rules", "reference")
MODEL_SYSTEMS = ("template", "template-untuned", "template-unconstrained")  # the model fills the slots


@dataclass(frozen=True)
class EvalConfig:
    systems: tuple[str, ...]
    split: str = "test"
    dataset: Path | None = None
    limit: int | None = None
    render: bool = False
    out: Path = Path("reports/eval")
    slots_adapter: Path | None = None
    freeform_adapter: Path | None = None
    base_model: str | None = None
    scene_timeout: float = 120.0
    baseline_batch: int = 16  # free-form generations decoded together (greedy; left padding)
    baseline_scenes: Path | None = None  # the baseline's scenes generated elsewhere (scripts/paper_on_gpu.py), as JSONL
    command: str = ""  # the command that asked for the report, as its caller gives it (the CLI: its own command line)
    cluster: RayCluster | None = None  # where the scenes run: None for this machine, or a Ray cluster


@dataclass
class Case:
    """One system's scene for one request, and everything measured about it."""

    index: int
    system: str
    request: str
    function: str
    level: str
    code: str | None = None
    error: str | None = None
    tokens: int | None = None
    seconds: float | None = None
    slots: dict | None = None
    repairs: list[str] = field(default_factory=list)
    slots_correct: bool | None = None
    emitted: str | None = None  # the model's slots response, as it wrote it
    valid_json: bool | None = None  # ... is a JSON object
    function_parses: bool | None = None  # ... whose function the project's grammar reads (a refusal: False)
    refusal: str | None = None  # the model's reason for finding no function (slots.REFUSALS)
    metrics: dict = field(default_factory=dict)
    findings: dict = field(default_factory=dict)


def same_function(candidate: ParsedFunction, truth: ParsedFunction) -> bool:
    """Whether two functions agree (up to the name of the variable) at the points where the truth is finite."""
    xs = np.linspace(-3.7, 3.7, 41)
    a = evaluator(candidate.expr, candidate.variable)(xs)
    b = evaluator(truth.expr, truth.variable)(xs)
    finite = np.isfinite(b)
    if finite.sum() < 5:
        return simplest(candidate.expr.subs(candidate.variable, truth.variable) - truth.expr) == 0  # bounded work
    return bool(np.allclose(a[finite], b[finite], rtol=1e-6, atol=1e-9, equal_nan=False))


def is_intended(function: str, row: Row) -> bool:
    """Whether a filler's function is the one `row` asks for (same_function)."""
    return same_function(parse_function(function), parse_function(row.slots.function, variable=row.slots.variable))


def produce(system: str, row: Row, config: EvalConfig, index: int) -> Case:
    """Ask one system for the scene of one request."""
    from derivanim.api import fill

    case = Case(index=index, system=system, request=row.instruction, function=row.function, level=row.level)
    started = time.perf_counter()
    try:
        if system == "reference":
            case.code = row.code or None
            case.error = None if row.code else "the dataset has no code for this row"
        elif system == "template-rules":
            animation = fill(row.slots.function, filler="rules")
            case.code, case.slots, case.repairs = animation.code, animation.slots.model_dump(), list(animation.repairs)
        elif system in MODEL_SYSTEMS:
            from derivanim.api import model_animation

            filled = model_fill(system, row.instruction, config, case)
            case.refusal = filled.refusal
            animation = model_animation(row.instruction, filled)
            case.code, case.repairs = animation.code, list(animation.repairs)
            case.slots = animation.slots.model_dump(mode="json")
            case.slots_correct = is_intended(animation.slots.function, row)
        else:
            raise ValueError(f"unknown system {system!r}")
    except (DerivanimError, ValueError) as error:
        case.error = f"{type(error).__name__}: {error}"
        if system in MODEL_SYSTEMS and case.slots_correct is None:
            case.slots_correct = False
    if case.seconds is None:
        case.seconds = time.perf_counter() - started
    return case


def model_fill(system: str, request: str, config: EvalConfig, case: Case):
    """The model's slots for one request (a model_filler.ModelFill), as `system` decodes them; its tokens, seconds and
    the response's validity go into `case` before the response is read (an unreadable one raises InvalidInput)."""
    from derivanim.api import model_slots, teaching_numbers
    from derivanim.model_filler import greedy_unconstrained, read_response

    if system == "template-unconstrained":
        emitted, tokens, seconds, model = greedy_unconstrained(request, config.slots_adapter, config.base_model)
        case.tokens, case.seconds, case.emitted = tokens, seconds, emitted
        case.valid_json, case.function_parses = response_validity(emitted)
        return read_response(request, emitted, teaching_numbers, tokens=tokens, forward_passes=tokens,
                             seconds=seconds, model=model)
    if system == "template":
        filled = model_slots(request, config.slots_adapter, config.base_model)
    else:  # the base model the adapter was trained on, without it
        filled = model_slots(request, False, config.base_model or adapter_info(config.slots_adapter)["base_model"])
    case.tokens, case.seconds, case.emitted = filled.tokens, filled.seconds, filled.emitted
    case.valid_json, case.function_parses = response_validity(filled.emitted)
    return filled


def response_validity(emitted: str) -> tuple[bool, bool]:
    """(a JSON object, with a function the project's grammar reads) for a model's slots response; a refusal has no
    function."""
    try:
        chosen = json.loads(emitted)
    except ValueError:
        return False, False
    if not isinstance(chosen, dict) or not isinstance(chosen.get("function"), str):
        return isinstance(chosen, dict), False
    try:
        parse_function(chosen["function"])
    except InvalidInput:
        return True, False
    return True, True


def produce_baseline(rows: list[Row], config: EvalConfig) -> list[Case]:
    """The free-form model's scenes for all rows, generated in batches (see baseline.generate_scenes), or read from
    config.baseline_scenes."""
    from derivanim.baseline import generate_scenes

    cases = [Case(index=i, system="baseline", request=row.instruction, function=row.function, level=row.level)
             for i, row in enumerate(rows)]
    try:
        generated = (generated_scenes(config.baseline_scenes, [row.instruction for row in rows])
                     if config.baseline_scenes is not None else
                     generate_scenes([row.instruction for row in rows], config.freeform_adapter,
                                     base_model=config.base_model, batch_size=config.baseline_batch))
    except DerivanimError as error:
        for case in cases:
            case.error = f"{type(error).__name__}: {error}"
        return cases
    for case, scene in zip(cases, generated):
        case.code, case.tokens, case.seconds = scene.text, scene.tokens, scene.seconds
        case.findings["finished"] = scene.finished  # EOS before max_new_tokens
    return cases


def generated_scenes(path: Path, requests: list[str]) -> list[SceneGeneration]:
    """The scenes of `requests`, in their order, from a JSONL file of generations (request, text, tokens, seconds,
    finished, model), such as scripts/paper_on_gpu.py writes on a GPU machine."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        found = {record["request"]: SceneGeneration(**record) for record in map(json.loads, filter(None, lines))}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InvalidInput(f"cannot read the baseline's scenes from {path}: {error}") from None
    missing = [request for request in requests if request not in found]
    if missing:
        raise InvalidInput(f"{path} has no scene for {len(missing)} of the {len(requests)} requests "
                           f"(the first: {missing[0]!r})")
    return [found[request] for request in requests]


def measure(cases: list[Case], rows: list[Row], config: EvalConfig, scratch: Path) -> None:
    """Fill in every case's metrics: AST first, then a dry run of all scenes, then (optionally) a render.

    Identical code runs identically: template-rules and reference (and most template scenes) are often the
    same file, so each distinct scene is dry-run and rendered once.
    """
    scenes, distinct = {}, {}  # the distinct scene of each case, by its code's digest
    for case in cases:
        case.metrics = static_metrics(case.code or "")
        if case.code is not None and case.metrics["valid_syntax"]:
            scenes[id(case)] = hashlib.sha256(case.code.encode()).hexdigest()
            distinct[scenes[id(case)]] = case.code
    reports = dict(dry_run_reports(distinct, timeout=config.scene_timeout, cluster=config.cluster))
    for case in cases:
        row = rows[case.index]
        truth = parse_function(row.slots.function, variable=row.slots.variable)
        if id(case) in scenes:
            report = reports[scenes[id(case)]]
            case.metrics.update(runtime_metrics(report, truth))
            case.findings.update({"error": report.get("error"), "layout": [
                {k: phase[k] for k in ("name", "outside_frame", "text_overlaps")} for phase in report.get("phases", [])
                if phase["outside_frame"] or phase["text_overlaps"]], "missing_curves": missing_curves(report)})
        else:  # nothing ran: every run-time row fails
            case.metrics.update(runtime_metrics(blank_report(error=case.error or "no code that parses"), truth))
    executable = {scenes[id(case)] for case in cases if case.metrics["executable"]}
    rendered = _renders({digest: distinct[digest] for digest in executable}, scratch,
                        config.cluster) if config.render else {}
    for case in cases:
        case.metrics["animation_output"] = rendered.get(scenes.get(id(case)), False) if config.render else None
        case.metrics["usable"] = usable(case.metrics)
        case.metrics["usable_any"] = usable_any_structure(case.metrics)


def _renders(codes: dict[str, str], scratch: Path, cluster: RayCluster | None) -> dict[str, bool]:
    """A real render of each scene at low quality: does it give a video with frames."""
    keys = list(codes)
    jobs = [Job(codes[key], mode="render", quality="l", timeout=600, output=scratch / "videos" / f"{key}.mp4")
            for key in keys]
    return {keys[result.index]: result.ok and _has_frames(result.video)
            for result in run_jobs(jobs, cluster=cluster)}


def _has_frames(video: Path) -> bool:
    import av

    try:
        with av.open(str(video)) as container:
            return next(container.decode(video=0), None) is not None
    except (OSError, av.error.FFmpegError):
        return False


def _rate(values: list) -> dict:
    measured = [v for v in values if v is not None]
    passed = sum(bool(v) for v in measured)
    return {"passed": passed, "of": len(measured), "rate": passed / len(measured) if measured else None}


def summarize(cases: list[Case], config: EvalConfig, dataset: dict) -> dict:
    systems = {}
    for system in config.systems:
        mine = [c for c in cases if c.system == system]
        entry = {key: _rate([c.metrics.get(key) for c in mine]) for key, _ in (*TABLE, *STRUCTURE_FREE)}
        entry["layout_clean"] = _rate([c.metrics.get("layout_clean") for c in mine])
        entry["by_level"] = {level: _rate([c.metrics["usable"] for c in mine if c.level == level]) for level in LEVELS}
        tokens = [c.tokens for c in mine if c.tokens is not None]
        seconds = [c.seconds for c in mine if c.seconds is not None]
        entry["tokens_mean"] = statistics.fmean(tokens) if tokens else None
        entry["latency_median_s"] = statistics.median(seconds) if seconds else None
        if system.startswith("template"):
            entry["repairs_per_request"] = statistics.fmean(len(c.repairs) for c in mine) if mine else None
            entry["requests_repaired"] = sum(bool(c.repairs) for c in mine)
        if system in MODEL_SYSTEMS:
            entry["slot_accuracy"] = _rate([c.slots_correct for c in mine])
            entry["valid_json"] = _rate([c.valid_json for c in mine])
            entry["function_parses"] = _rate([c.function_parses for c in mine])
            entry["refusals"] = sum(c.refusal is not None for c in mine)
        if system == "baseline":
            entry["finished"] = _rate([c.findings.get("finished") for c in mine])  # EOS before max_new_tokens
        entry["errors"] = sum(c.error is not None for c in mine)
        systems[system] = entry
    return {
        "command": config.command,
        "derivanim": __version__,
        "python": platform.python_version(),
        "versions": package_versions("manim", "sympy", "torch", "transformers", "peft", "outlines", "llguidance"),
        "dataset": dataset,
        "split": config.split,
        "render": config.render,
        **({"baseline_decoding": {"max_new_tokens": PAPER_MAX_NEW_TOKENS, "greedy": True, "batch": config.baseline_batch}}
           if "baseline" in config.systems else {}),
        "adapters": {name: _adapter_record(path) for name, path in
                     (("slots", config.slots_adapter), ("freeform", config.freeform_adapter)) if path is not None},
        **({"baseline_scenes": {"path": str(config.baseline_scenes),
                                "sha256": hashlib.sha256(Path(config.baseline_scenes).read_bytes()).hexdigest()}}
           if config.baseline_scenes is not None else {}),
        "systems": systems,
    }


def _adapter_record(path: Path) -> dict:
    digest = hashlib.sha256()
    for file in sorted(Path(path).rglob("*")):
        if file.is_file() and file.suffix in (".safetensors", ".json", ".bin"):
            digest.update(file.name.encode() + file.read_bytes())
    return {"path": str(path), "sha256": digest.hexdigest()}


def _cell(rate: dict) -> str:
    if rate["rate"] is None:
        return "—"
    return f"{rate['passed']}/{rate['of']} ({100 * rate['rate']:.1f}%)"


def table_markdown(summary: dict) -> str:
    systems = list(summary["systems"])
    lines = ["| Metric | " + " | ".join(systems) + " |", "|---" * (len(systems) + 1) + "|"]
    for key, title in (*TABLE[:-1], ("layout_clean", "Layout clean (in frame, no text on text)"), TABLE[-1],
                       *STRUCTURE_FREE):
        cells = [_cell(summary["systems"][s][key]) for s in systems]
        title = f"**{title}**" if key in ("usable", "usable_any") else title
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    extras = (("tokens_mean", "Generated tokens (mean)", "{:.0f}"), ("latency_median_s", "Latency (median, s)", "{:.2f}"),
              ("repairs_per_request", "Repairs per request", "{:.2f}"))
    for key, title, form in extras:
        cells = [form.format(summary["systems"][s][key]) if summary["systems"][s].get(key) is not None else "—"
                 for s in systems]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    if "baseline" in summary["systems"]:
        lines.append(f"| Finished (EOS within {PAPER_MAX_NEW_TOKENS:,} tokens) | " + " | ".join(
            _cell(summary["systems"][s]["finished"]) if s == "baseline" else "—" for s in systems) + " |")
    if any(s in MODEL_SYSTEMS for s in systems):
        for key, title in (("valid_json", "Valid JSON (model's slots response)"),
                           ("function_parses", "Function parses (project grammar)"),
                           ("slot_accuracy", "Slot accuracy (intended function)")):
            lines.append(f"| {title} | " + " | ".join(
                _cell(summary["systems"][s][key]) if s in MODEL_SYSTEMS else "—" for s in systems) + " |")
        lines.append("| Refusals | " + " | ".join(
            str(summary["systems"][s]["refusals"]) if s in MODEL_SYSTEMS else "—" for s in systems) + " |")
    for level in LEVELS:
        lines.append(f"| Usable, {level} | " + " | ".join(_cell(summary["systems"][s]["by_level"][level]) for s in systems) + " |")
    return "\n".join(lines) + "\n"


def table_latex(summary: dict) -> str:
    systems = list(summary["systems"])
    rows = []
    for key, title in (*TABLE[:-1], ("layout_clean", "Layout clean"), TABLE[-1], *STRUCTURE_FREE):
        cells = [("--" if summary["systems"][s][key]["rate"] is None else f"{100 * summary['systems'][s][key]['rate']:.1f}\\%")
                 for s in systems]
        name = rf"\textbf{{{title}}}" if key in ("usable", "usable_any") else title
        rows.append(f"{name} & " + " & ".join(cells) + r" \\")
    header = "Metric & " + " & ".join(s.replace("-", "--") for s in systems) + r" \\"
    return "\n".join([
        r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * len(systems) + "}", r"\toprule",
        header, r"\midrule", *rows, r"\bottomrule", r"\end{tabular}",
        rf"\caption{{Generation quality on the {summary['split']} split ({summary['dataset']['rows']} requests), measured by running the code.}}",
        r"\end{table}", "",
    ])


def figures(summary: dict, config: EvalConfig, out: Path) -> list[Path]:
    """Per-level usable rates, and each adapter's loss curves beside its system's usable rate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    systems = list(summary["systems"])
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(systems))
    for i, system in enumerate(systems):
        rates = [summary["systems"][system]["by_level"][level]["rate"] or 0 for level in LEVELS]
        ax.bar(np.arange(len(LEVELS)) + i * width, [100 * r for r in rates], width, label=system)
    ax.set_xticks(np.arange(len(LEVELS)) + width * (len(systems) - 1) / 2, LEVELS)
    ax.set_ylabel("usable animations (%)")
    ax.set_ylim(0, 105)
    ax.legend()
    ax.set_title("Usable animations by curriculum level")
    fig.tight_layout()
    paths.append(out / "usable_by_level.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    curves = [(system, adapter) for system, adapter in (("template", config.slots_adapter), ("baseline", config.freeform_adapter))
              if system in systems and adapter is not None and (Path(adapter) / "training_log.json").exists()]
    if curves:
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for system, adapter in curves:
            log = json.loads((Path(adapter) / "training_log.json").read_text())
            steps = log.get("steps", [])
            line, = axes[0].plot([e["step"] for e in steps], [e["train_loss"] for e in steps], label=f"{system}: train")
            validated = [e for e in log.get("epochs", []) if e.get("val_loss") is not None]
            axes[0].plot([e["step"] for e in validated], [e["val_loss"] for e in validated], marker="s", linestyle="--",
                         color=line.get_color(), label=f"{system}: validation (end of epoch)")
        axes[0].set_xlabel("optimizer step")
        axes[0].set_ylabel("loss")
        axes[0].set_title("Training and validation loss")
        axes[0].legend()
        axes[1].bar(systems, [100 * (summary["systems"][s]["usable"]["rate"] or 0) for s in systems])
        axes[1].set_ylim(0, 105)
        axes[1].set_ylabel("usable animations (%)")
        axes[1].set_title("Quality: usable animations")
        fig.tight_layout()
        paths.append(out / "loss_vs_quality.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def run_eval(config: EvalConfig, on_progress=None) -> dict:
    """Evaluate, write the report into config.out, and return the summary."""
    unknown = [s for s in config.systems if s not in SYSTEMS]
    if unknown:
        raise InvalidInput(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    if config.baseline_batch < 1:
        raise InvalidInput("--baseline-batch must be at least 1")
    if config.dataset is not None and not Path(config.dataset).exists():
        raise InvalidInput(f"no dataset at {config.dataset}")
    if any(s in MODEL_SYSTEMS for s in config.systems) and config.slots_adapter is None:
        config = dataclasses.replace(config, slots_adapter=shipped_slots_adapter())
    rows = load_corpus(config.dataset, split=config.split)
    if config.limit is not None:
        rows = rows[: config.limit]
    if not rows:
        raise InvalidInput(f"the dataset has no rows in split {config.split!r}")
    digest = hashlib.sha256("".join(row.to_json() for row in rows).encode()).hexdigest()
    dataset = {"path": str(config.dataset or "data/corpus"), "rows": len(rows), "sha256": digest}
    cases = []
    for system in config.systems:
        if system == "baseline":
            if on_progress:
                on_progress(f"baseline: generating {len(rows)} scenes, {config.baseline_batch} at a time")
            cases += produce_baseline(rows, config)
            continue
        for index, row in enumerate(rows):
            cases.append(produce(system, row, config, index))
            if on_progress:
                on_progress(f"{system}: {index + 1}/{len(rows)} generated")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="derivanim-eval-") as scratch:
        if on_progress:
            on_progress(f"running {len(cases)} scenes")
        measure(cases, rows, config, Path(scratch))
    summary = summarize(cases, config, dataset)
    with open(out / "samples.jsonl", "w") as stream:
        for case in cases:
            stream.write(json.dumps({k: v for k, v in vars(case).items()}, default=str) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    notes = f"Command: `{config.command}`\n\n"
    if "baseline" in config.systems:
        notes += (f"Baseline decoding: greedy, at most {PAPER_MAX_NEW_TOKENS:,} new tokens (the paper's setting), "
                  f"{config.baseline_batch} requests per batch; its latency is the wall time of a request's batch.\n\n")
    (out / "summary.md").write_text(f"# {config.split} split: {len(rows)} requests\n\n" + notes + table_markdown(summary)
                                    + "\n" + DEFINITIONS)
    (out / "summary.tex").write_text(table_latex(summary))
    figures(summary, config, out)
    return summary
