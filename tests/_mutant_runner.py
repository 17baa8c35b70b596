"""mutmut's test runner for ``nox -s mutants``, with the heavy imports paid once per module.

``serve SOCKET`` imports the third-party stack (torch, lightning, timm, ...) once and listens on
a Unix socket; for each request it forks a child that forgets every ``ssl4gie`` and ``tests``
module (mutmut has just edited one of them), runs ``pytest.main`` with the request's arguments
and exits 0 if the tests pass, else 1. ``run SOCKET ARGS...`` (mutmut's ``--runner``) sends
ARGS and exits with that code: a mutant costs its tests' run time, not ~5 s of imports.
Linux/macOS.

Why 1 for every failure: mutmut 2 counts only exit code 1 as "tests failed", so a mutant that
breaks collection (pytest's 2: an import error, a syntax error) would otherwise survive.
"""

from __future__ import annotations

import os
import signal
import socket
import sys

CHILD_TIMEOUT_S = 600  # a mutant that loops forever is killed (and counts as detected)


def serve(path: str) -> None:
    import lightning  # noqa: F401  the imports that dominate a test run's start
    import numpy  # noqa: F401
    import pytest
    import timm  # noqa: F401
    import torch  # noqa: F401
    import torchmetrics  # noqa: F401
    import torchvision  # noqa: F401

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen()
    while True:
        connection, _ = server.accept()
        with connection:
            args = connection.recv(1 << 16).decode().split("\0")
            child = os.fork()
            if child == 0:
                signal.alarm(CHILD_TIMEOUT_S)
                for name in [n for n in sys.modules if n.split(".")[0] in ("ssl4gie", "tests")]:
                    del sys.modules[name]
                os._exit(0 if pytest.main(args) == 0 else 1)
            code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
            connection.sendall(bytes([code if 0 <= code < 256 else 1]))  # killed: 1


def run(path: str, args: list[str]) -> int:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    with client:
        client.sendall("\0".join(args).encode())
        reply = client.recv(1)
    return reply[0] if reply else 1


if __name__ == "__main__":
    command, path, *rest = sys.argv[1:]
    if command == "serve":
        serve(path)
    else:
        sys.exit(run(path, rest))
