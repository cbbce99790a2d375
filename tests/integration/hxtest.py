"""Helpers shared by the integration tests and the benchmark.

free_port: TCP ports for the daemons of a run, safe while other suites run at once. Binding port 0 and closing it hands out a port from the kernel's ephemeral range, which every
outgoing connection on the machine (other tests' clients, the daemons' own peer links) also
draws its source port from: one of them could take the port before our daemon binds it ("Address
already in use", seen in CI). So: ports below the ephemeral range, each reserved for this
process's life by a lock file that other suites honour, and checked to be bindable now.
"""

import fcntl
import json
import os
import random
import socket
import tempfile

_LOCK_DIR = os.path.join(tempfile.gettempdir(), "hykex-test-ports")
_held = []  # lock files kept open: a port stays reserved until this process ends


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host="127.0.0.1"):
    """A port on host no other process listens on or has reserved through this module."""
    os.makedirs(_LOCK_DIR, mode=0o1777, exist_ok=True)
    low, rng = 10000, random.SystemRandom()
    high = max(low + 1000, _ephemeral_low())
    for _ in range(2000):
        port = rng.randrange(low, high)
        fd = os.open(os.path.join(_LOCK_DIR, str(port)), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                os.close(fd)
                continue
        _held.append(fd)
        return port
    raise RuntimeError("no free TCP port below the ephemeral range")


def next_json(sock, buf, closed="the other end closed the connection"):
    """The next JSON value from sock: (value, its text, the bytes after it), buf being the bytes
    already received. Waits for a value split over several reads; undecodable bytes (and a UTF-8
    character split between reads) are carried through unchanged (surrogateescape)."""
    dec = json.JSONDecoder()
    while True:
        text = buf.decode("utf-8", "surrogateescape").lstrip()
        if text:
            try:
                obj, end = dec.raw_decode(text)
                return obj, text[:end], text[end:].encode("utf-8", "surrogateescape")
            except ValueError:
                pass
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError(closed)
        buf += chunk
