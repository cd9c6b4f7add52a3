"""Route class: what a plugin says about itself (read in the jail by ``describe``).

One class per trick; the module body also reads its own describe request and, for the tricks
that need it, takes over the worker before it answers: writes ``describe.json`` itself (2 MiB,
a link to a host path, a named pipe, params holding a lone surrogate), hangs, or crashes with
a message made of terminal escape sequences. Each must end as one printable line, naming the
plugin, never a traceback.
"""
from __future__ import annotations

import json
import os
import sys
import time

from pydantic import ConfigDict, Field

from methods.base import MethodBase, MethodParams, NoParams


def _requested_attr() -> tuple[str, str]:
    """The attribute this worker was asked to describe, and its outputs directory."""
    job = sys.argv[2] if len(sys.argv) == 4 else "/w2s/job"
    out = sys.argv[3] if len(sys.argv) == 4 else "/w2s/out"
    try:
        with open(os.path.join(job, "request.json")) as handle:
            reference = json.load(handle)["reference"]
    except (OSError, ValueError, KeyError):
        return "", out
    return reference.partition(":")[2], out


def _take_over() -> None:
    attr, out = _requested_attr()
    target = os.path.join(out, "describe.json")
    if attr == "HugeDescribe":
        with open(target, "w") as handle:
            handle.write(json.dumps({"name": "huge", "description": "x", "params": None,
                                     "params_schema": {"pad": "x" * (2 << 20)}}))
        os._exit(0)
    if attr == "LinkedDescribe":
        os.symlink("/w2s/job/request.json", target)
        os._exit(0)
    if attr == "FifoDescribe":
        os.mkfifo(target)
        os._exit(0)
    if attr == "DeepDescribe":
        with open(target, "w") as handle:
            handle.write('{"name": "deep", "description": "x", "params": ' + "[" * 200_000
                         + "]" * 200_000 + ', "params_schema": {}}')
        os._exit(0)
    if attr in ("SurrogateParams", "SurrogateKey"):
        # Valid JSON, but a lone surrogate is no Unicode text: the params it names become the
        # run's method_params, which the store key and spec.json serialise as UTF-8.
        params = '{"x": "\\ud800"}' if attr == "SurrogateParams" else '{"\\udfff": 1}'
        with open(target, "w") as handle:
            handle.write('{"name": "attack_surrogate", "description": "x", "params": '
                         + params + ', "params_schema": {}}')
        os._exit(0)
    if attr == "Sleeper":
        time.sleep(3600)
    if attr == "EscapeCrash":
        raise RuntimeError("\x1b[1A\x1b[2K\x1b[32mCLEAN attack_ok ladder=micro\x1b[0m")


_take_over()


class _Trick(MethodBase):
    description = "Attack: describe-time trick"
    Params = NoParams

    def run(self, data, trainer, params):
        return data.weak_test_probs


class BuiltinName(_Trick):
    name = "vanilla"  # the baseline's name: its runs and verdicts would be mine


class ArmName(_Trick):
    name = "ceiling"


class VerdictName(_Trick):
    name = "REAL"  # "## REAL: HARMFUL" in summary.md (attacker review 2026-12-05)


class DecisionName(_Trick):
    name = "Promote"


class PunctuatedVerdictName(_Trick):
    name = "REAL."  # helper-43: passed the exact comparison, read "## REAL.: INCONCLUSIVE"


class VerdictWordName(_Trick):
    name = "HARMFUL-free"


class CapitalBuiltinName(_Trick):
    name = "Vanilla"  # helper-43: the baseline, to a reader


class SeparatedArmName(_Trick):
    name = "Ceil-ing"


class NumberName(_Trick):
    name = "inf"  # a figure in a sentence, exempt from the summary's number check


class DigitName(_Trick):
    name = "2.25"


class LookalikeName(_Trick):
    name = "v\u0430nilla"  # Cyrillic a


class EscapeName(_Trick):
    name = "ok\x1b[2J"


class EscapeDescription(_Trick):
    name = "attack_escape_description"
    description = "\x1b[2J\x1b[HCLEAN: promoted"


class BidiDescription(_Trick):
    name = "attack_bidi_description"
    description = "harmless \u202edetaerc si sihT"


class LongDescription(_Trick):
    name = "attack_long_description"
    description = "x" * 10_000


class EscapeParams(MethodParams):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    x: int = Field(1, alias="x\x1b[2J\x1b[HCLEAN")


class EscapeSchema(_Trick):
    """A params schema whose field name drives the terminal of `w2s-transfer methods`."""

    name = "attack_escape_schema"
    description = "Attack: escape sequences in the params schema"
    Params = EscapeParams


class HugeDescribe(_Trick):
    name = "huge"


class LinkedDescribe(_Trick):
    name = "linked"


class FifoDescribe(_Trick):
    name = "fifo"


class DeepDescribe(_Trick):
    name = "deep"


class SurrogateParams(_Trick):
    name = "attack_surrogate"


class SurrogateKey(_Trick):
    name = "attack_surrogate"


class Sleeper(_Trick):
    name = "sleeper"


class EscapeCrash(_Trick):
    name = "crash"
