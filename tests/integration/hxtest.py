"""Helpers shared by the integration tests and the benchmark.

Runner: the one test runner of every integration driver (qkdsim_test.py, hykexd_test.py,
fault_test.py, hostile_test.py, peer_auth_test.py). It owns the run's temporary folder, registers
the cases (@R.test), runs those HYKEX_TEST_ONLY selects (comma-separated case names; all when
unset), starts the daemons and the simulator (waiting for their "ready" line) and stops them by
PID, checks how they exited, and ends with the summary line "N passed, M failed, K skipped"; the
exit status is 1 when anything failed. The folder is removed after a clean run and kept (its
path printed) otherwise, for the logs.

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
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

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


def free_loopback(preferred, ports):
    """A loopback prefix for a suite whose programs each have their own address (prefix + "0"
    to prefix + "3", with fixed ports): preferred (e.g. "127.0.0.2" for 127.0.0.20-23) when no
    other suite on this machine holds it and every (address, port) binds now, else the first
    free "127.0.N.1" (127.0.N.10-13). Reserved like free_port, for this process's life."""
    os.makedirs(_LOCK_DIR, mode=0o1777, exist_ok=True)
    for prefix in [preferred] + [f"127.0.{n}.1" for n in range(1, 255)]:
        fd = os.open(os.path.join(_LOCK_DIR, "lo-" + prefix), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if all(_bindable(prefix + str(i), port) for i in range(4) for port in ports):
            _held.append(fd)
            return prefix
        os.close(fd)
    raise RuntimeError("no free loopback addresses for the suite")


def _bindable(host, port):
    with socket.socket() as s:
        try:
            s.bind((host, port))
            return True
        except OSError:
            return False


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


class JsonApp:
    """An application speaking the reference wire format to hykexd's API at (host, port): one
    JSON object per call, the reply read with next_json."""

    def __init__(self, host, port, timeout=15):
        self.s = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def call(self, command, **data):
        self.s.sendall(json.dumps({"command": command, "data": data}).encode())
        obj, _, self.buf = next_json(self.s, self.buf, "daemon closed the connection")
        return obj

    def close(self):
        self.s.close()


def check(cond, what):
    """Fails the running case with what when cond is false."""
    if not cond:
        raise AssertionError(what)


class Skip(Exception):
    """Raised by a case that cannot run here (it says why); counted as skipped, not failed."""


def timing(fn):
    """Marks a case whose assertion is a rate or a duration: skipped (saying so) in the tsan
    build, where ThreadSanitizer makes every program 5-15 times slower, so the bound would
    measure the sanitizer. The ASan build (scripts/test.sh) asserts it unchanged."""
    def case():
        if os.environ.get("HYKEX_TSAN") == "1":
            raise Skip("a timing bound; asserted in the ASan build, not under ThreadSanitizer")
        fn()
    case.__name__ = fn.__name__
    case.__doc__ = fn.__doc__
    return case


class Runner:
    """Cases, programs and results of one integration driver (see the module's docstring)."""

    def __init__(self, prefix):
        self.work = tempfile.mkdtemp(prefix=prefix)
        self.cases = []     # registered cases, in order: (name, function)
        self.results = []   # (name, "ok" | "fail" | "skip")
        self.procs = {}     # name -> Popen of every program started with start()
        self.exit_ok = {}   # name -> exit statuses that count as a clean stop (None: unchecked)

    # ---- cases ----

    def test(self, fn, name=None):
        """Registers fn as a case (a decorator); returns a callable that runs it once."""
        name = name or fn.__name__

        def run():
            t0 = time.time()
            try:
                fn()
                self.results.append((name, "ok"))
                print(f"ok   {name} ({time.time() - t0:.2f} s)", flush=True)
            except Skip as e:
                self.results.append((name, "skip"))
                print(f"skip {name}: {e}", flush=True)
            except Exception as e:  # noqa: BLE001 - report every failure and go on
                self.results.append((name, "fail"))
                print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)
        run.__name__ = name
        self.cases.append((name, run))
        return run

    def fail(self, name, why):
        """Records a failure found outside a case (a stalled stream, an unclean exit)."""
        self.results.append((name, "fail"))
        print(f"FAIL {name}: {why}", flush=True)

    def selected(self, order=None):
        """The cases HYKEX_TEST_ONLY=name[,name] selects (all when it is unset), in the order
        given (the cases' runners, by default all registered cases as registered)."""
        runs = order if order is not None else [run for _, run in self.cases]
        only = os.environ.get("HYKEX_TEST_ONLY")
        if only is None:
            return runs
        names = set(only.split(","))
        return [run for run in runs if run.__name__ in names]

    # ---- programs ----

    def start(self, name, argv, log, exit_ok=(0,), ready="ready", **popen):
        """Starts argv as program name (stderr appended to log), waits for its ready line and
        returns its Popen. exit_ok: the exit statuses stop_all() accepts (None: not checked)."""
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=open(log, "a"), text=True,
                             **popen)
        self.procs[name] = p
        self.exit_ok[name] = exit_ok
        line = p.stdout.readline()
        if line.strip() != ready:
            raise RuntimeError(f"{name} did not start: {line!r}; see {log}")
        return p

    def stop(self, name, timeout=5):
        """SIGTERM to the program's PID, SIGKILL if it has not exited within timeout seconds;
        returns its exit status (negative: the signal that ended it)."""
        p = self.procs[name]
        if p.poll() is None:
            os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
        return p.returncode

    def stop_all(self):
        """Stops every program still running (SIGTERM to all first, so they stop in parallel)
        and fails the run for each that exited with a status its start() did not accept."""
        t0 = time.time()
        for p in self.procs.values():
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for name in self.procs:
            code = self.stop(name)
            ok = self.exit_ok.get(name)
            if ok is not None and code not in ok:
                self.fail(f"{name} exit {code}", f"{name} exited {code}; see its log in {self.work}")
        print(f"programs stopped in {time.time() - t0:.2f} s", flush=True)

    # ---- the run ----

    def run(self, setup=None, order=None, after_each=None, finish=None):
        """setup(), the selected cases (after_each(case) after each; order: as in selected()),
        finish(), then every program stopped and the summary; exits the process with 0 or 1."""
        phase = "set-up"
        try:
            if setup is not None:
                setup()
            for run in self.selected(order):
                phase = run.__name__
                run()
                if after_each is not None:
                    after_each(run)
            phase = "finish"
            if finish is not None:
                finish()
        except BaseException as e:  # noqa: BLE001 - a broken set-up is a failure too
            self.fail(phase, f"{type(e).__name__}: {e}")
        finally:
            self.stop_all()
        n = {k: sum(1 for _, r in self.results if r == k) for k in ("ok", "fail", "skip")}
        if n["fail"]:
            print(f"logs and configs kept in {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)
        print(f"{n['ok']} passed, {n['fail']} failed, {n['skip']} skipped", flush=True)
        sys.exit(1 if n["fail"] else 0)
