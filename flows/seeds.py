"""The range of a training seed, the same wherever one enters (``run-arm --seed``,
``audit --seed``, a plan's ``seeds``)."""
from __future__ import annotations

# torch.manual_seed takes at most 2**64 - 1 (a larger seed was a ValueError traceback after the
# model had loaded); 2**31 - 1 also fits every library that takes a 32-bit seed, and leaves room
# for the offsets derived seeds add (transfer/student.py adds 7919 per refit).
MAX_SEED = 2**31 - 1
