"""The long fuzz run: random strings and random expression trees through fill(filler="rules").

Each case must end as a verified animation whose plotted f' matches SymPy's ("accepted") or as the project's
InvalidInput ("invalid"); anything else ("other": another exception, or an f' that disagrees) is a bug.
Uses the strategies and the check of tests/test_fuzz.py, without shrinking, and writes reports/fuzz.json.

    .venv/bin/python scripts/fuzz.py                   # 2000 cases of each strategy
    .venv/bin/python scripts/fuzz.py --cases 200 --seed 1
"""

import argparse
import json
import platform
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402
from test_fuzz import check_fill, random_texts, tree_texts  # noqa: E402

STRATEGIES = {"random_text": random_texts, "expression_tree": tree_texts}
SLOW_SECONDS = 5.0  # a case slower than this is reported: pathological input must return within a few seconds


def fuzz(name: str, cases: int, random_seed: int, progress_every: int = 250) -> dict:
    counts, others, slowest, accepted_examples = Counter(), [], [], []
    started = time.monotonic()

    @seed(random_seed)
    @settings(max_examples=cases, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(STRATEGIES[name]())
    def one(text):
        case_started = time.monotonic()
        try:
            outcome = check_fill(text)
        except Exception as error:  # the point of the run: record it and go on
            outcome = "other"
            others.append({
                "text": text,
                "error": f"{type(error).__name__}: {error}"[:500],
                "where": traceback.format_exc().strip().splitlines()[-3:],
            })
        seconds = time.monotonic() - case_started
        counts[outcome] += 1
        slowest.append((seconds, text, outcome))
        slowest.sort(key=lambda item: -item[0])
        del slowest[10:]
        if outcome == "accepted" and len(accepted_examples) < 20:
            accepted_examples.append(text)
        done = sum(counts.values())
        if done % progress_every == 0:
            print(f"  {name}: {done} cases, {dict(counts)}", flush=True)

    one()
    return {
        "cases": sum(counts.values()),
        "accepted": counts["accepted"],
        "invalid": counts["invalid"],
        "other": counts["other"],
        "seconds": round(time.monotonic() - started, 1),
        "slow_cases": sum(1 for s, _, _ in slowest if s > SLOW_SECONDS),
        "slowest": [{"seconds": round(s, 3), "text": text, "outcome": outcome} for s, text, outcome in slowest],
        "other_errors": others,
        "accepted_examples": accepted_examples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per strategy (default: 2000)")
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed, for a repeatable run (default: 0)")
    parser.add_argument("--strategy", choices=[*STRATEGIES, "both"], default="both")
    parser.add_argument("--report", default=str(ROOT / "reports" / "fuzz.json"), help="where to write the JSON report")
    args = parser.parse_args()

    names = list(STRATEGIES) if args.strategy == "both" else [args.strategy]
    results = {}
    for name in names:
        print(f"{name}: {args.cases} cases (seed {args.seed}) ...", flush=True)
        results[name] = fuzz(name, args.cases, args.seed)
        r = results[name]
        print(f"{name}: {r['cases']} cases in {r['seconds']} s: {r['accepted']} accepted, {r['invalid']} invalid, "
              f"{r['other']} other errors; slowest {r['slowest'][0]['seconds'] if r['slowest'] else 0} s", flush=True)
    total = {key: sum(r[key] for r in results.values()) for key in ("cases", "accepted", "invalid", "other", "slow_cases")}
    print(f"total: {total['cases']} cases: {total['accepted']} accepted, {total['invalid']} invalid, "
          f"{total['other']} other errors, {total['slow_cases']} slower than {SLOW_SECONDS:g} s")
    report = {
        "command": " ".join(["scripts/fuzz.py", *sys.argv[1:]]),
        "seed": args.seed,
        "python": platform.python_version(),
        "total": total,
        "strategies": results,
    }
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print(f"report: {args.report}")
    return 1 if total["other"] or total["slow_cases"] else 0


if __name__ == "__main__":
    sys.exit(main())
