#!/usr/bin/env python3
"""An external W2S method in plain Python (no dependencies): naive Bayes on words, trained on the
weak teacher's soft labels. Shows the external-command contract end to end:

    w2s-transfer run-arm --arm student --method external \
        --param command='python3 /abs/path/examples/external_bow.py {inputs} {outputs}' ...

Reads {inputs}/student.jsonl ({"id", "text", "weak_prob"}) and {inputs}/test.jsonl
({"id", "text"}); writes {outputs}/predictions.jsonl ({"id", "prob"}), prob = P(label 1).
"""
import json
import math
import sys
from collections import defaultdict
from pathlib import Path


def main(inputs: str, outputs: str) -> None:
    counts = [defaultdict(float), defaultdict(float)]
    totals, prior = [0.0, 0.0], [0.0, 0.0]
    with open(Path(inputs) / "student.jsonl") as handle:
        for line in handle:
            row = json.loads(line)
            p1 = float(row["weak_prob"])
            for label, weight in ((0, 1.0 - p1), (1, p1)):
                prior[label] += weight
                for word in row["text"].lower().split():
                    counts[label][word] += weight
                    totals[label] += weight
    vocabulary = set(counts[0]) | set(counts[1])
    out = Path(outputs)
    out.mkdir(parents=True, exist_ok=True)
    with open(Path(inputs) / "test.jsonl") as handle, open(out / "predictions.jsonl", "w") as sink:
        for line in handle:
            row = json.loads(line)
            score = math.log((prior[1] + 1) / (prior[0] + 1))
            for word in row["text"].lower().split():
                if word in vocabulary:
                    score += math.log((counts[1][word] + 1) / (totals[1] + len(vocabulary)))
                    score -= math.log((counts[0][word] + 1) / (totals[0] + len(vocabulary)))
            prob = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, score))))
            sink.write(json.dumps({"id": row["id"], "prob": prob}) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
