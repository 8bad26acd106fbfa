"""Functions in words (derivanim.verbalise) and the slots adapter's training rows (derivanim.slots_corpus)."""

import random
import re
from pathlib import Path

import pytest

from derivanim.grammar import parse_function
from derivanim.prompts import response_text
from derivanim.slots import REFUSALS
from derivanim.slots_corpus import WORD_FORMATS, refusal_requests, refusal_rows, words_rows
from derivanim.verbalise import say, wordings

from tiny_model import smollm2_tokenizer

REQUESTS = Path(__file__).resolve().parent.parent / "data" / "requests"


def said(function: str, count: int = 12) -> list[str]:
    return wordings(parse_function(function).expr, count, function)


def test_the_phrases_teachers_use_are_among_the_wordings():
    assert "the natural log of cos x" in said("ln(cos(x))") or "the natural log of cosine x" in said("ln(cos(x))")
    assert "e to the x squared" in said("e^(x^2)")
    assert any(text in said("x*sin(x)") for text in ("x times sine x", "x times sin x"))
    assert any(text in said("1/x") for text in ("one over x", "1 over x"))
    assert "the square root of x plus one" in said("sqrt(x + 1)")


def test_an_open_phrase_is_never_followed_by_more_of_the_sum():
    """'the square root of x plus one' is sqrt(x + 1): sqrt(x) + 1 must be said so that it cannot read that way."""
    for text in said("sqrt(x) + 1"):
        assert not re.search(r"root of x plus", text), text
    for text in said("sin(x^2) + x"):
        assert text.endswith("x squared") or text.startswith("x plus"), text
    assert all("squared of x" in text for text in said("sin(x)^2"))  # never 'sine of x squared' (sin(x^2))


def test_what_words_cannot_say_plainly_gets_no_wordings():
    assert said("ln(x + 3)/x^2") == []  # an open numerator: 'ln of x plus three over x squared' is ambiguous
    assert said("sin(x^2) + cos(x^2)") == []  # two open terms side by side


def test_wordings_are_different_reproducible_and_bounded():
    texts = said("x^3*cos(x)", 3)
    assert 1 <= len(texts) <= 3 and len(set(texts)) == len(texts)
    assert texts == said("x^3*cos(x)", 3)
    assert say(parse_function("x^2").expr, random.Random(0)).open is False


def _held_out() -> tuple[list[str], list[tuple[str, str]]]:
    off_topic = [line.split("  # ")[0] for name in sorted(path.name for path in REQUESTS.glob("off_topic*.txt"))
                 for line in (REQUESTS / name).read_text(encoding="utf-8").splitlines()
                 if line and not line.startswith("#")]
    words = [tuple(line.split("\t")) for name in ("words.tsv", "words_2.tsv")
             for line in (REQUESTS / name).read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#")]
    return off_topic, words


def test_the_held_out_requests_are_never_generated_for_training():
    off_topic, words = _held_out()
    assert len(set(off_topic)) == 250 and len(words) >= 20
    generated = {text.lower() for requests in refusal_requests().values() for text in requests}
    assert not generated & {text.lower() for text in off_topic}
    for request, function in words:
        parse_function(function)  # the intended function is in the grammar
        assert not any(fmt.split("{words}")[0] and request.startswith(fmt.split("{words}")[0]) and
                       request.endswith(fmt.split("{words}")[1]) for fmt in WORD_FORMATS), request


def test_refusal_rows_cover_every_reason_and_never_repeat_across_splits():
    rows = refusal_rows({"train": 80, "val": 12, "test": 12}, seed=0)
    assert {row["refusal"] for row in rows} == set(REFUSALS)
    assert len({row["instruction"] for row in rows}) == len(rows)
    assert [response_text("slots", row) for row in rows[:1]] == ['{"function":null,"reason":"code"}']


def test_words_rows_keep_the_split_and_ask_for_the_row_function():
    corpus = [{"split": "train", "function": "ln(cos(x))", "slots": {"function": "ln(cos(t))", "variable": "t",
                                                                       "name": "g", "x_min": -1, "x_max": 1, "x0": 0.5}},
              {"split": "test", "function": "ln(x + 3)/x^2", "slots": {"function": "ln(x + 3)/x^2", "variable": "x",
                                                                          "name": "f", "x_min": 1, "x_max": 4, "x0": 2}}]
    rows = words_rows(corpus, seed=0)
    assert len(rows) == 2  # two wordings of the training function; the second function cannot be said plainly
    assert rows[0]["instruction"] != rows[1]["instruction"]
    assert rows[0]["split"] == "train" and rows[0]["slots"]["function"] == "ln(cos(x))"
    assert (rows[0]["slots"]["variable"], rows[0]["slots"]["name"]) == ("x", "f")
    assert "log of" in rows[0]["instruction"] or "ln of" in rows[0]["instruction"]


def test_every_training_response_is_one_constrained_decoding_can_write():
    from derivanim.model_filler import SlotsConstraint

    constraint = SlotsConstraint(smollm2_tokenizer())
    corpus = [{"split": "train", "function": f, "slots": {"function": f, "variable": "x", "name": "f", "x_min": -2,
                                                          "x_max": 2, "x0": 1}} for f in ("x^3*cos(x)", "e^(x^2)")]
    for row in words_rows(corpus, seed=0) + refusal_rows({"train": 8, "val": 0, "test": 0}, seed=0):
        assert constraint.accepts(response_text("slots", row)), row


@pytest.mark.parametrize("reason", list(REFUSALS))
def test_each_reason_has_enough_distinct_requests_to_learn_from(reason):
    assert len(refusal_requests()[reason]) >= 20
