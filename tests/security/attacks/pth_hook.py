"""Route class: files an entry-point plugin's distribution installs beside the trusted code.

An entry-point plugin is registered by installing its distribution into the environment the
pipeline runs from. A distribution may ship a ``.pth`` file; ``site`` executes every
``import`` line of every ``.pth`` in site-packages at each interpreter start, the trusted
``w2s-transfer`` process included, long before any jail. The suite installs this module as
``w2s_pth_hook.py`` with ``w2s_pth_hook.pth`` (``import w2s_pth_hook``) beside it; on import it
records the process it runs in (``$W2S_PTH_MARKER``). A real one would wait for the task to be
loaded (an import hook on ``transfer.arms``) and stash or forge whatever it likes.
"""
import os
import sys

_marker = os.environ.get("W2S_PTH_MARKER")
if _marker:
    with open(_marker, "a") as _handle:
        _handle.write(f"pid {os.getpid()}: {' '.join(sys.argv)[:200]}\n")
