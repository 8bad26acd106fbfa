"""Calibrate when the model filler refuses: thresholds on model_filler.refusal_share, chosen on validation requests.

    .venv/bin/python scripts/calibrate_refusal.py --adapter derivanim/adapters/slots --val runs/slots-corpus/val.jsonl

The share is the model's probability of answering '{"function":null' rather than '{"function":"'. Requests where the
grammar finds a function (written, or said in words) and requests where it finds none get a threshold each: the
smallest share above every function request's share of that kind on the validation rows (no false refusal there),
plus a margin. Requests that are nothing but a function ('3 root x', model_filler.only_a_function) are left out:
fill_slots never refuses them, and their shares (up to 0.95) are not those of the sentences a threshold decides.
Requests that write a function and ask for its derivative in words, never refused either, stay in: they are such
sentences, and without them no validation request with a function would be left to place the threshold. Writes
ADAPTER/refusal_calibration.json, which fill_slots reads.
"""

import argparse
import json
import os
from pathlib import Path

import torch

from derivanim.model_filler import CALIBRATION, _slots_decoder, only_a_function, refusal_share, request_functions
from derivanim.prompts import prompt_ids

MARGIN = 0.02


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", default="derivanim/adapters/slots")
    parser.add_argument("--val", default="runs/slots-corpus/val.jsonl")
    args = parser.parse_args()
    decoder = _slots_decoder(None, os.path.abspath(args.adapter), False)
    rows = [json.loads(line) for line in Path(args.val).read_text(encoding="utf-8").splitlines() if line.strip()]
    shares = {"with": {"function": [], "refusal": []}, "without": {"function": [], "refusal": []}}
    with torch.no_grad():
        for row in rows:
            if only_a_function(row["instruction"]):
                continue
            share, _ = refusal_share(decoder, prompt_ids(decoder.tokenizer, "slots", row["instruction"]))
            kind = "with" if request_functions(row["instruction"]) else "without"
            shares[kind]["refusal" if row.get("slots") is None else "function"].append(share)
    thresholds = {}
    for kind, found in shares.items():
        highest = max(found["function"], default=0.0)
        thresholds[kind] = min(0.99, highest + MARGIN)
        refused = sum(share > thresholds[kind] for share in found["refusal"])
        print(f"{kind} a function found: {len(found['function'])} function requests (share at most {highest:.3f}), "
              f"{len(found['refusal'])} to refuse, {refused} of them above the threshold {thresholds[kind]:.3f}")
    calibration = {"threshold_with_function": thresholds["with"], "threshold_without_function": thresholds["without"],
                   "validation": args.val, "margin": MARGIN,
                   "rows": sum(len(found) for by_answer in shares.values() for found in by_answer.values())}
    (Path(args.adapter) / CALIBRATION).write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(calibration))


if __name__ == "__main__":
    main()
