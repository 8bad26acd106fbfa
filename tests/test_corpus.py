"""derivanim.catalog and derivanim.corpus: the function catalog, the committed corpus, building, importing, stats."""

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import sympy

from derivanim import catalog, corpus
from derivanim.calculus import EXPANSION_BUDGET, SIMPLIFY_BUDGET, derivative, expanded_terms
from derivanim.catalog import LEVELS, PAPER_FORMATS, PARAPHRASES, FunctionSet, format_kind, to_text
from derivanim.cli import main
from derivanim.grammar import parse_function, symbol
from derivanim.lessons import DERIVATIVE

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
CATALOG = ROOT / "data" / "functions"
REFERENCE = ROOT.parent / "shared" / "reference" / "derivanimator-525"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="the original corpus is not on this machine")


@pytest.fixture(scope="module")
def committed() -> dict[str, list[corpus.Row]]:
    return {split: corpus.load_corpus(CORPUS, split=split) for split in corpus.SPLITS}


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((CORPUS / corpus.MANIFEST).read_text())


# ----------------------------------------------------------------------------- the catalog

def test_printer_writes_what_the_grammar_reads_back():
    x = symbol("x")
    trees = [x**2 + 5 * x + 6, sympy.exp(-x) * x**3, sympy.log(x) / 2, sympy.sqrt(2 * x + 1), x ** sympy.Rational(1, 3),
             (x**2 + 1) / (x**2 - 4), sympy.sin(sympy.cos(x**2)), sympy.exp(sympy.sin(x)) * sympy.tan(x), 2**x,
             sympy.atan(x / 2), sympy.Abs(x - 1), sympy.E * x, x ** sympy.exp(x), sympy.exp(sympy.exp(-x**2))]
    for tree in trees:
        text = to_text(tree)
        assert "**" not in text and "exp(" not in text and "log(" not in text
        assert parse_function(text).expr == tree, text


def test_rename_variable_goes_through_sympy_not_text():
    assert catalog.rename_variable("x*e^(-x)*exp(x^2)", "t") == "t*e^(-t)*e^(t^2)"  # exp in x is not e, x
    assert catalog.rename_variable("x^2*sin(x)", "s") == "s^2*sin(s)"


def test_catalog_generation_is_deterministic():
    sizes = {level: 5 for level in LEVELS}
    first = catalog.generate_catalog(seed=3, sizes=sizes)
    assert first == catalog.generate_catalog(seed=3, sizes=sizes)
    assert first != catalog.generate_catalog(seed=4, sizes=sizes)
    assert all(len(first[level]) == 5 for level in LEVELS)


@pytest.mark.slow
def test_committed_catalog_is_what_the_generator_writes(tmp_path):
    catalog.write_catalog(catalog.generate_catalog(catalog.DEFAULT_SEED), tmp_path)
    for level in LEVELS:
        assert (tmp_path / f"{level}.txt").read_bytes() == (CATALOG / f"{level}.txt").read_bytes(), level


def test_committed_catalog_sizes_and_no_equivalent_functions():
    functions = catalog.read_catalog(CATALOG)
    assert {level: len(texts) for level, texts in functions.items()} == catalog.DEFAULT_LEVEL_SIZES
    kept = FunctionSet()
    for level, texts in functions.items():
        for text in texts:
            expr = parse_function(text).expr
            assert to_text(expr) == text  # printed by the project's printer, read back unchanged
            assert catalog.fits_level(expr, level), (level, text)
            assert kept.add(expr), f"{text} is equivalent to a function already in the catalog"


def test_every_catalog_derivative_is_simplified_in_full():
    # The corpus is written with every form simplest() knows: no catalog f' reaches calculus's work budgets.
    for texts in catalog.read_catalog(CATALOG).values():
        for text in texts:
            parsed = parse_function(text)
            slope = derivative(parsed.expr, parsed.variable)
            assert sympy.count_ops(slope) <= SIMPLIFY_BUDGET, text
            assert expanded_terms(sympy.together(slope)) <= EXPANSION_BUDGET, text


def test_equivalent_functions_are_caught_by_form_or_value():
    kept = FunctionSet()
    x = symbol("x")
    assert kept.add(sympy.sin(2 * x))
    assert not kept.add(2 * sympy.sin(x) * sympy.cos(x))  # equal values, another tree
    assert kept.add(x**2 + 2 * x + 1)
    assert not kept.add((x + 1) ** 2)
    assert not kept.add(parse_function("x^2 + 2x + 1").expr)  # the same tree
    assert kept.add(x**2 + 2 * x + 2)


def test_functions_nobody_can_read_are_not_usable():
    assert catalog.usable("x^2*sin(x)")
    assert catalog.usable("e^(x^3)")  # readable since the window stops where f runs away ([-1.5, 1.5])
    for text in ("sin(2*e^(4*x + 2) + 1)", "e^(6*e^(x/2 + 3))", "cos(3*x^7 + 11*x^6 + 10*x^4 + 8*x^3)"):
        assert not catalog.usable(text), text  # f' or the axes run away, or the graph is a smear of wiggles


def test_a_wrong_derivative_in_the_scene_is_caught():
    from types import SimpleNamespace

    plan = SimpleNamespace(variable="x", f_source="x*numpy.sin(x)*numpy.exp(x)", x_min=-3.0, x_max=3.0,
                           f_breaks=(), df_breaks=(),
                           df_source="numpy.exp(x)*(x*numpy.sin(x) + x*numpy.cos(x) + numpy.sin(x))")
    assert DERIVATIVE.check_plan(plan) == []
    wrong = SimpleNamespace(**{**vars(plan), "df_source": "x*numpy.sin(x)*numpy.cos(x)*numpy.exp(x)"})
    assert "in the scene, but f changes at" in DERIVATIVE.check_plan(wrong)[0]


def test_growing_the_catalog_adds_new_verified_functions_deterministically():
    base = catalog.read_catalog(CATALOG)
    sizes = {**{level: 3 for level in LEVELS}, "application": len(base["application"]) + 3}
    grown = catalog.grow_catalog(base, sizes, seed=1)
    assert grown == catalog.grow_catalog(base, sizes, seed=1)
    assert {level: len(texts) for level, texts in grown.items()} == sizes
    new = grown["application"][len(base["application"]):]
    kept = FunctionSet()
    for text in (t for texts in base.values() for t in texts):
        kept.add(parse_function(text).expr)
    for text in new:
        assert catalog.usable(text)
        assert kept.add(parse_function(text).expr), text


# ----------------------------------------------------------------------------- sizes, splits, formats

def test_default_sizes_are_the_papers():
    assert corpus.level_sizes(537) == {"foundation": 134, "conceptual": 135, "application": 134, "advanced": 134}
    assert corpus.split_sizes(537) == {"train": 418, "val": 50, "test": 69}
    table = corpus.split_level_sizes(537)
    assert {split: sum(levels.values()) for split, levels in table.items()} == corpus.split_sizes(537)
    assert corpus.split_sizes(5000) == {"train": 3892, "val": 466, "test": 642}
    assert sum(corpus.level_sizes(5000).values()) == 5000


def test_instruction_formats_follow_the_papers_proportions():
    formats = catalog.instruction_formats("paper", 537, seed=0)
    counts = Counter(formats)
    assert set(counts) == set(PAPER_FORMATS)
    for fmt, weight in PAPER_FORMATS.items():  # within rounding of 537 * weight / total
        assert abs(counts[fmt] - 537 * weight / sum(PAPER_FORMATS.values())) < 1
    assert set(catalog.instruction_formats("standard", 50, seed=0)) == {catalog.STANDARD_FORMAT}
    kinds = Counter(format_kind(fmt) for fmt in catalog.instruction_formats("paraphrase", 1000, seed=0))
    assert kinds["paper"] == 500 and all(kinds[kind] == 125 for kind in PARAPHRASES)


# ----------------------------------------------------------------------------- the committed corpus

def test_committed_corpus_counts(committed, manifest):
    assert {split: len(rows) for split, rows in committed.items()} == {"train": 418, "val": 50, "test": 69}
    levels = Counter(row.level for rows in committed.values() for row in rows)
    assert levels == {"foundation": 134, "conceptual": 135, "application": 134, "advanced": 134}
    for split, rows in committed.items():
        assert all(row.split == split for row in rows)
        assert dict(Counter(row.level for row in rows)) == {k: v for k, v in manifest["levels"][split].items() if v}
    assert (manifest["size"], manifest["seed"], manifest["instructions"]) == (537, 0, "paper")


def test_no_function_repeats_within_or_across_splits(committed):
    kept = FunctionSet()
    forms = set()
    for rows in committed.values():
        for row in rows:
            expr = parse_function(row.function).expr
            assert sympy.srepr(expr) not in forms
            forms.add(sympy.srepr(expr))
            assert kept.add(expr), f"{row.split}: {row.function} is equivalent to another row's function"


def test_manifest_hashes_match_the_files(manifest):
    for name, entry in manifest["files"].items():
        data = (CORPUS / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        assert data.count(b"\n") == entry["rows"]
    for name, sha in manifest["catalog"]["sha256"].items():
        assert hashlib.sha256((CATALOG / name).read_bytes()).hexdigest() == sha, name
    assert manifest["version"] == corpus.__version__


def test_committed_rows_use_the_papers_formats_and_agree_with_their_slots(committed, manifest):
    rows = [row for split_rows in committed.values() for row in split_rows]
    assert dict(Counter(row.instruction_format for row in rows)) == manifest["formats"]
    assert manifest["formats"] == catalog.apportion(PAPER_FORMATS, 537)  # exact proportions, rounded
    for row in rows:
        assert row.instruction == row.instruction_format.format(f=row.function)
        assert (row.slots.function, row.slots.name, row.slots.variable) == (row.function, "f", "x")
        assert row.slots.x_min < row.slots.x0 < row.slots.x_max


def test_committed_rows_are_sound(committed):
    """Every check of the build on a spread of rows (all of them run in the slow rebuild test)."""
    rows = [row for split_rows in committed.values() for row in split_rows]
    for row in rows[::23]:
        assert corpus.row_problems(row) == [], row.function


def test_the_build_plan_reproduces_every_committed_row(committed, manifest):
    plans = corpus.plan_rows(corpus.BuildConfig.from_manifest(CORPUS / corpus.MANIFEST))
    rows = [row for split in corpus.SPLITS for row in committed[split]]
    assert [(p.split, p.level, p.function, p.instruction_format) for p in plans] == [
        (r.split, r.level, r.function, r.instruction_format) for r in rows]
    lines = {split: (CORPUS / f"{split}.jsonl").read_text().splitlines() for split in corpus.SPLITS}
    start = {"train": 0, "val": 418, "test": 468}
    for split in corpus.SPLITS:  # a few whole rows, byte for byte
        for index in (0, 7, 31)[: 3 if split == "train" else 2]:
            assert corpus.make_row(plans[start[split] + index]).to_json() == lines[split][index]


@pytest.mark.slow
def test_data_build_reproduces_the_committed_corpus_byte_for_byte(capsys):
    assert main(["data", "build", "--check", "-o", str(CORPUS)]) == 0
    assert "reproduced byte for byte" in capsys.readouterr().out


# ----------------------------------------------------------------------------- building

def test_paraphrased_requests_and_their_slots_agree():
    plans = corpus.plan_rows(corpus.BuildConfig(size=537, seed=0, instructions="paraphrase"))
    picked = {}
    for plan in plans:
        picked.setdefault(format_kind(plan.instruction_format), []).append(plan)
    assert set(picked) == {"paper", *PARAPHRASES}
    for kind in PARAPHRASES:
        for plan in picked[kind][:6]:
            row = corpus.make_row(plan)
            assert corpus.row_problems(row) == [], (kind, row.instruction)
            slots, text = row.slots, row.instruction
            assert slots.function in text
            assert catalog.canonical_form(slots.function) == catalog.canonical_form(row.function)
            if kind == "interval":
                found = re.search(r"\[(-?[\d.]+), (-?[\d.]+)\]|from (-?[\d.]+) to (-?[\d.]+)", text)
                a, b = [float(v) for v in found.groups() if v is not None]
                assert (slots.x_min, slots.x_max) == (a, b)
            if f"{slots.name}({slots.variable}) =" not in text:
                assert (slots.name, "f(x) =" in text) == ("f", False)  # no header: the default name
            if slots.variable != "x":
                assert not re.search(r"\bx\b", slots.function) and slots.variable in slots.function
    renamed = [corpus.make_row(plan) for plan in picked["rename"][:6]]
    assert all((row.slots.name, row.slots.variable) != ("f", "x") for row in renamed)
    assert all(f"{row.slots.name}({row.slots.variable}) = {row.slots.function}" in row.instruction for row in renamed)
    bare = [corpus.make_row(plan) for plan in picked["bare"][:6]]
    assert all("=" not in row.instruction for row in bare)


def test_a_small_build_writes_a_corpus_whose_manifest_matches(tmp_path):
    result = corpus.build_corpus(corpus.BuildConfig(size=12, seed=5, instructions="standard"))
    assert result.failures == []
    written = corpus.write_corpus(result, tmp_path)
    assert written["splits"] == corpus.split_sizes(12)
    for name, entry in written["files"].items():
        assert hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() == entry["sha256"]
    rows = corpus.load_corpus(tmp_path)
    assert {row.instruction_format for row in rows} == {catalog.STANDARD_FORMAT}
    assert Counter(row.level for row in rows) == {level: 3 for level in LEVELS}
    assert json.loads((tmp_path / "manifest.json").read_text()) == written
    rebuilt = corpus.build_corpus(corpus.BuildConfig.from_manifest(tmp_path / "manifest.json"))
    assert corpus.check_corpus(tmp_path, rebuilt) == []


def test_build_refuses_to_write_a_corpus_with_a_failing_row(tmp_path):
    def broken(plan):  # the seam: one row's code does not compile
        row = corpus.make_row(plan)
        return row.model_copy(update={"code": row.code + "\n)"}) if plan.key.endswith("-0") else row

    result = corpus.build_corpus(corpus.BuildConfig(size=8), make=broken)
    assert len(result.failures) == 2 and all("does not compile" in f or "template" in f for f in result.failures)
    with pytest.raises(corpus.CorpusInvalid) as refused:
        corpus.write_corpus(result, tmp_path / "out")
    assert "train row 0" in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_data_build_exits_1_listing_the_failures(tmp_path, monkeypatch, capsys):
    real = corpus.row_problems
    monkeypatch.setattr(corpus, "row_problems",
                        lambda row: ["injected failure"] if row.level == "advanced" else real(row))
    out = tmp_path / "corpus"
    assert main(["data", "build", "--size", "8", "--no-dry-run", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "2 row(s) failed validation" in err and "injected failure" in err
    assert not out.exists()


def test_dry_run_problems_are_read_from_the_report():
    phases = list(DERIVATIVE.phase_methods)
    good = {"error": None, "phase_names": phases, "plots": [{"axes": 0}],
            "phases": [{"name": n, "outside_frame": [], "text_overlaps": []} for n in phases]}
    assert corpus.dry_run_problems(good) == []
    bad = json.loads(json.dumps(good))
    bad["error"] = "ValueError: zip() argument 2 is longer than argument 1"
    bad["phases"] = bad["phases"][:3]
    bad["phases"][2]["text_overlaps"] = [["MathTex('h =')", "DecimalNumber('-2')"]]
    problems = corpus.dry_run_problems(bad)
    assert any("zip()" in p for p in problems) and any("did not run" in p for p in problems)
    assert any("text over text" in p for p in problems)


def test_dry_run_reports_a_scene_that_cannot_run():
    found = corpus.dry_run({"broken": "this is not python\n"})
    assert found["broken"] and "dry-run error" in found["broken"][0]


def test_dry_run_sample_is_spread_over_levels(committed):
    rows = [row for split in corpus.SPLITS for row in committed[split]]
    chosen = corpus.dry_run_sample(rows, 40, seed=0)
    assert len(chosen) == 40 == len(set(chosen))
    assert Counter(rows[i].level for i in chosen) == {level: 10 for level in LEVELS}
    assert chosen == corpus.dry_run_sample(rows, 40, seed=0)
    assert corpus.dry_run_sample(rows, None, seed=0) == list(range(len(rows)))


# ----------------------------------------------------------------------------- the original corpus

@pytest.fixture(scope="module")
def imported() -> list[corpus.Row]:
    if not REFERENCE.is_dir():
        pytest.skip("the original corpus is not on this machine")
    return corpus.load_corpus(REFERENCE)


@needs_reference
@pytest.mark.slow
def test_import_of_the_original_corpus_keeps_levels_and_instructions(imported):
    assert len(imported) == 525
    assert Counter(row.split for row in imported) == {"train": 418, "val": 50, "test": 57}
    assert Counter(row.level for row in imported) == {"foundation": 127, "conceptual": 156, "application": 188,
                                                     "advanced": 54}
    for split, hf in corpus.ORIGINAL_INSTRUCTIONS.items():
        prompts = [json.loads(line) for line in (REFERENCE / hf).read_text().splitlines() if line.strip()]
        rows = [row for row in imported if row.split == split]
        assert [row.instruction for row in rows] == [p["instruction"] for p in prompts]
        assert [row.code for row in rows] == [p["output"] for p in prompts]
    formats = Counter(row.instruction_format for row in imported)
    assert {fmt: formats[fmt] for fmt in PAPER_FORMATS} == PAPER_FORMATS and formats["other"] == 0
    assert all(row.slots.function == row.function for row in imported)


@needs_reference
@pytest.mark.slow
def test_data_import_writes_rows_the_loader_reads_back(imported, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(corpus, "import_original", lambda folder, splits=corpus.SPLITS: imported)
    monkeypatch.setattr(corpus, "load_tokenizer", lambda: None)
    assert main(["data", "import", str(REFERENCE), "-o", str(tmp_path)]) == 0
    assert "525" in capsys.readouterr().out
    assert corpus.load_corpus(tmp_path) == imported
    assert corpus.load_corpus(tmp_path / "test.jsonl")[0] == imported[468]


# ----------------------------------------------------------------------------- stats

def test_data_stats_prints_the_table_and_writes_latex_and_a_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(corpus, "load_tokenizer", lambda: None)  # characters / 4, and says so
    latex, figure = tmp_path / "table.tex", tmp_path / "levels.png"
    assert main(["data", "stats", str(CORPUS), "--latex", str(latex), "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    for cell in ("train", "val", "test", "total", "418", "50", "69", "537", "134", "135", "characters / 4"):
        assert cell in out
    tex = latex.read_text()
    assert r"\begin{tabular}" in tex and "Foundation" in tex and "537" in tex
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_count_tokens_with_the_tokenizer_when_given(committed):
    class Whitespace:
        def __call__(self, texts, add_special_tokens=False):
            return {"input_ids": [text.split() for text in texts]}

    stats = corpus.corpus_stats(committed, tokenizer=Whitespace())
    words = [len(row.code.split()) for row in committed["val"]]
    assert stats["splits"]["val"]["tokens"] == round(sum(words) / len(words), 1)
    assert stats["splits"]["val"]["levels"] == {"foundation": 13, "conceptual": 13, "application": 12, "advanced": 12}
