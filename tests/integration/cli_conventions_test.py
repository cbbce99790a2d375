#!/usr/bin/env python3
"""The command-line conventions of every program (issue 14 items 4, 6, 7): one parser for all.

Usage: cli_conventions_test.py BIN_DIR REPO_ROOT

- hykex, each of its subcommands (as `hykex --help` lists them, so a new one is covered
  without a change here), hykexd, hykex-qkdsim and its ctl: -h and --help print the usage on
  stdout and exit 0; --version prints "NAME VERSION" with CMakeLists.txt's project version and
  exits 0; an unknown option and a missing value exit 2 naming the option.
- The bash completion offers every subcommand, and only options the programs accept.
- CLI errors name what they are about: a malformed key stream id, a missing, unreadable or wrong
  request file, an unreachable address or socket, a config without an API address.
- hykex status: --json prints the STATUS document as hykexd sent it; the table shows every field
  of it, also fields this CLI does not know (a stand-in hykexd on a Unix socket answers with a
  document with new fields), and of a real node's document.
Ends with "N passed, M failed, K skipped" (the runner: hxtest.Runner).
"""
import json
import os
import re
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hxtest import Runner, check, free_port, next_json  # noqa: E402

BIN, ROOT = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
R = Runner("hykex-cli-")
WORK = R.work
HYKEX = f"{BIN}/hykex"
VERSION = re.search(r"project\(hykex VERSION ([0-9.]+)", open(f"{ROOT}/CMakeLists.txt").read())[1]


def run(*argv, **kw):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=30, **kw)


def subcommands():
    out = run(HYKEX, "--help").stdout
    block = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    return [line.split()[0] for line in block.splitlines() if line.strip()]


def commands():
    """(argv prefix, name printed) of every program and subcommand."""
    cmds = [([HYKEX], "hykex"), ([f"{BIN}/hykexd"], "hykexd"),
            ([f"{BIN}/hykex-qkdsim"], "hykex-qkdsim"),
            ([f"{BIN}/hykex-qkdsim", "ctl"], "hykex-qkdsim ctl")]
    return cmds + [([HYKEX, s], f"hykex {s}") for s in subcommands()]


@R.test
def subcommands_are_listed():
    subs = subcommands()
    check({"run", "open", "get", "close", "status", "version", "uuid", "kdf", "combine", "kem",
           "sig", "help"} <= set(subs), f"hykex --help lists {subs}")


@R.test
def help_exits_0_with_usage_everywhere():
    bad = []
    for argv, name in commands():
        for opt in ("--help", "-h"):
            r = run(*argv, opt)
            if r.returncode != 0 or not r.stdout.startswith(f"usage: {name}") or r.stderr:
                bad.append(f"{name} {opt}: exit {r.returncode}, {r.stdout[:60]!r} {r.stderr[:80]!r}")
    for s in subcommands():
        if s != "help" and run(HYKEX, "help", s).stdout != run(HYKEX, s, "--help").stdout:
            bad.append(f"hykex help {s} differs from hykex {s} --help")
    check(not bad, "; ".join(bad))


@R.test
def version_exits_0_with_the_project_version_everywhere():
    bad = []
    for argv, name in commands():
        r = run(*argv, "--version")
        if r.returncode != 0 or r.stdout != f"{name} {VERSION}\n":
            bad.append(f"{name} --version: exit {r.returncode}, {r.stdout!r}")
    r = run(HYKEX, "version")
    if r.returncode != 0 or not r.stdout.startswith(f"hykex {VERSION}\n"):
        bad.append(f"hykex version: {r.stdout[:40]!r}")
    doc = json.loads(run(HYKEX, "version", "--json").stdout)
    if doc.get("hykex") != VERSION or "openssl" not in doc:
        bad.append(f"hykex version --json: {doc}")
    check(not bad, "; ".join(bad))


@R.test
def unknown_option_exits_2_naming_it_everywhere():
    bad = []
    for argv, name in commands():
        for opt in ("--no-such-option", "--no-such-option=1", "-Z"):
            r = run(*argv, opt)
            shown = opt.split("=")[0]
            if (r.returncode != 2 or f"'{shown}'" not in r.stderr or name not in r.stderr
                    or r.stdout):
                bad.append(f"{name} {opt}: exit {r.returncode}, {r.stderr.strip()[:100]!r}")
    check(not bad, "; ".join(bad))


@R.test
def missing_value_exits_2_naming_the_option():
    cases = [([HYKEX, "get", "--index"], "--index"), ([HYKEX, "status", "-c"], "-c"),
             ([HYKEX, "status", "--address"], "--address"), ([f"{BIN}/hykexd", "-c"], "-c"),
             ([f"{BIN}/hykexd", "--peers"], "--peers"),
             ([f"{BIN}/hykex-qkdsim", "--ctl"], "--ctl"),
             ([HYKEX, "kdf", "hkdf-sha256", "--length"], "--length")]
    bad = []
    for argv, opt in cases:
        r = run(*argv)
        if r.returncode != 2 or f"'{opt}' needs a value" not in r.stderr:
            bad.append(f"{' '.join(argv[1:])}: exit {r.returncode}, {r.stderr.strip()[:100]!r}")
    check(not bad, "; ".join(bad))


@R.test
def qkdsim_check_config_json_is_the_network():
    net = f"{ROOT}/examples/qkdsim/three-nodes.json"
    given = json.load(open(net))
    r = run(f"{BIN}/hykex-qkdsim", "--check-config", "--json", "-c", net)
    check(r.returncode == 0, f"exit {r.returncode}: {r.stderr}")
    doc = json.loads(r.stdout)
    check([k["id"] for k in doc["kmes"]] == [k["id"] for k in given["kmes"]]
          and [k["node"] for k in doc["kmes"]] == [k["node"] for k in given["kmes"]]
          and [x["id"] for x in doc["links"]] == [x["id"] for x in given["links"]]
          and [x["kmes"] for x in doc["links"]] == [x["kmes"] for x in given["links"]],
          f"--check-config --json differs from {net}: {r.stdout[:400]}")
    text = run(f"{BIN}/hykex-qkdsim", "--check-config", "-c", net).stdout
    check(all(f"kme {k['id']} node {k['node']}" in text for k in doc["kmes"]),
          f"the text and the JSON disagree:\n{text}")
    r = run(f"{BIN}/hykex-qkdsim", "--json", "-c", net)
    check(r.returncode == 2 and "--json goes with --check-config" in r.stderr, r.stderr)


def complete(*words):
    """What the bash completion offers for the last of words (the programs from BIN)."""
    script = (f'export PATH={BIN}:$PATH; . {ROOT}/completion/hykex.bash; '
              'COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); '
              'case $1 in hykex) _hykex ;; *) _hykexd ;; esac; printf "%s\\n" "${COMPREPLY[@]}"')
    r = run("bash", "-c", script, "complete", *words, cwd=WORK)
    check(r.returncode == 0, f"completion of {words}: {r.stderr}")
    return [w for w in r.stdout.split("\n") if w]


@R.test
def completion_offers_every_subcommand_and_only_accepted_options():
    check(complete("hykex", "") == subcommands(),
          f"subcommands offered {complete('hykex', '')}, hykex --help lists {subcommands()}")
    expect = {("hykex", "status"): {"--json", "--address", "--unix", "--config", "--help",
                                    "--version"},
              ("hykex", "get"): {"--index", "--address", "--unix", "--config"},
              ("hykex", "kdf", "hkdf-sha256"): {"--ikm", "--salt", "--info", "--length"},
              ("hykex", "combine", "hkdf"): {"--key", "--length", "--stream-id", "--psk"},
              ("hykex", "sig", "ML-DSA-65", "selftest"): {"--runs", "--key"},
              ("hykexd",): {"--config", "--peers", "--check-config", "--help", "--version"},
              ("hykex-qkdsim",): {"--config", "--ctl", "--log-level", "--check-config"}}
    for s in subcommands():
        expect.setdefault(("hykex", s), set()).update({"--help", "--version"})
    bad = []
    for words, want in expect.items():
        offered = complete(*words, "--")
        if not want <= set(offered):
            bad.append(f"{' '.join(words)}: offers {offered}, lacks {sorted(want - set(offered))}")
        prog = [f"{BIN}/{words[0]}", *words[1:]]
        for opt in offered:  # each accepted: "--help" after it ends the parse (or is its value)
            r = run(*prog, opt, "--help")
            if "unknown option" in r.stderr:
                bad.append(f"{' '.join(words)} {opt}: offered but refused: {r.stderr.strip()}")
    check("selftest" in complete("hykex", "kem", "ML-KEM-768", ""), "kem selftest not offered")
    check("hkdf" in complete("hykex", "combine", "hk"), "combine methods not offered")
    check("pools" in complete("hykex-qkdsim", "ctl", "/tmp/x", ""), "ctl verbs not offered")
    check(not bad, "; ".join(bad))


@R.test
def errors_name_the_key_stream_id():
    for argv in (["get", "bad-id"], ["close", "1234"], ["get", "x" * 36],
                 ["open", "--ksid", "not-a-uuid", "qkd://a", "qkd://b"]):
        r = run(HYKEX, *argv)
        bad_id = argv[1] if argv[0] != "open" else argv[2]
        check(r.returncode == 2 and f"'{bad_id}' is not a key stream id" in r.stderr,
              f"hykex {' '.join(argv)}: exit {r.returncode}, {r.stderr.strip()!r}")


@R.test
def errors_name_the_request_file_and_why():
    missing = f"{WORK}/missing.json"
    notjson, getreq = f"{WORK}/notjson.json", f"{WORK}/get.json"
    open(notjson, "w").write("{\"command\": ")
    json.dump({"command": "GET_KEY", "data": {"key_stream_id": "11111111-2222-4333-8444-555555555555"}},
              open(getreq, "w"))
    cases = [(missing, 1, [f"cannot read {missing}", "No such file or directory"]),
             (WORK, 1, [f"cannot read {WORK}", "not a regular file"]),
             (notjson, 1, [notjson, "not a JSON object"]),
             (getreq, 1, [getreq, "a GET_KEY request, not OPEN_CONNECT"])]
    if os.getuid() != 0:  # root reads a 0000 file anyway
        locked = f"{WORK}/locked.json"
        open(locked, "w").write("{}")
        os.chmod(locked, 0)
        cases.append((locked, 1, [locked, "Permission denied"]))
    for path, code, words in cases:
        r = run(HYKEX, "run", path)
        check(r.returncode == code and all(w in r.stderr for w in words),
              f"hykex run {path}: exit {r.returncode}, {r.stderr.strip()!r}, wants {words}")


@R.test
def errors_name_the_address_and_why():
    port = free_port()  # reserved, and nothing listens on it
    cases = [(["--address", f"127.0.0.1:{port}"], 1, [f"127.0.0.1:{port}", "Connection refused"]),
             (["--unix", f"{WORK}/none.sock"], 1,
              [f"Unix socket {WORK}/none.sock", "No such file or directory"]),
             (["--address", "nonsense"], 2, ["'nonsense' is not HOST:PORT"]),
             (["--unix", "relative.sock"], 2, ["'relative.sock' must be an absolute path"]),
             (["-c", f"{WORK}/missing-config.json"], 1,
              [f"cannot read {WORK}/missing-config.json", "No such file or directory"])]
    noaddr = f"{WORK}/noaddr.json"
    json.dump({"uuid": "11111111-2222-4333-8444-555555555555"}, open(noaddr, "w"))
    cases.append((["-c", noaddr], 2, [noaddr, "hybridization_server_address"]))
    for cmd in ("status", "get"):
        for opts, code, words in cases:
            extra = ["11111111-2222-4333-8444-555555555555"] if cmd == "get" else []
            r = run(HYKEX, cmd, *opts, *extra)
            check(r.returncode == code and all(w in r.stderr for w in words),
                  f"hykex {cmd} {' '.join(opts)}: exit {r.returncode}, {r.stderr.strip()!r}, "
                  f"wants {words}")


@R.test
def qkdsim_ctl_names_the_socket():
    r = run(f"{BIN}/hykex-qkdsim", "ctl", f"{WORK}/no-sim.ctl", "pools")
    check(r.returncode == 1 and f"control socket {WORK}/no-sim.ctl: No such file or directory"
          in r.stderr, f"exit {r.returncode}: {r.stderr.strip()!r}")


def fake_hykexd(path, document, conns=2):
    """A stand-in hykexd on a Unix socket: answers conns STATUS requests with document."""
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)

    def serve():
        for _ in range(conns):
            conn, _ = srv.accept()
            with conn:
                req, _, _ = next_json(conn, b"")
                reply = document if req.get("command") == "STATUS" else {"status": 1}
                conn.sendall(json.dumps(reply).encode())
        srv.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


def scalars(o):
    """The document's top-level values but the reply's ETSI status 0 (not shown)."""
    return {k: v for k, v in o.items()
            if not isinstance(v, (dict, list)) and not (k == "status" and v == 0)}


def shown(v):
    """A scalar as the table shows it."""
    return {True: "yes", False: "no", None: "-"}.get(v, str(v)) if not isinstance(v, (int, float)) \
        or isinstance(v, bool) else str(v)


@R.test
def status_table_shows_fields_it_does_not_know():
    doc = {"status": 0, "node": "aaaaaaaa-0000-4000-8000-00000000000a", "version": "9.8.7",
           "uptime_s": 12345, "a_new_top_level_field": "present",
           "kme": {"reachable": True, "latency_ms": 3.5, "some_new_kme_field": "kme-extra"},
           "peers": [{"uuid": "bbbbbbbb-0000-4000-8000-00000000000b", "up": True,
                      "keys_per_s_1m": 41.5, "a_new_peer_column": "col-value",
                      "last_error": "bad\x1b[31mred\nline"},
                     {"uuid": "cccccccc-0000-4000-8000-00000000000c", "up": False}],
           "streams": [], "certificates": [{"what": "own", "expires": "2027-01-01T00:00:00Z"}],
           "errors": {"batches_failed": 0, "brand_new_counter": 77}}
    sock = f"{WORK}/fake.sock"
    t = fake_hykexd(sock, doc)
    table = run(HYKEX, "status", "--unix", sock)
    raw = run(HYKEX, "status", "--json", "--unix", sock)
    t.join(5)
    if os.environ.get("HYKEX_SHOW"):
        print(table.stdout)
    check(table.returncode == 0 and raw.returncode == 0, f"{table.stderr} {raw.stderr}")
    check(json.loads(raw.stdout) == doc, f"--json is not the document: {raw.stdout[:300]}")
    out = table.stdout
    lines = out.splitlines()
    want = [f"{k}" for k in ("node", "version", "uptime_s", "a_new_top_level_field", "kme",
                             "reachable", "latency_ms", "some_new_kme_field", "peers (2)",
                             "a_new_peer_column", "keys_per_s_1m", "streams (0)",
                             "certificates (1)", "errors", "brand_new_counter")]
    want += ["9.8.7", "12345", "present", "kme-extra", "col-value", "41.5", "77",
             "2027-01-01T00:00:00Z", "bbbbbbbb-0000-4000-8000-00000000000b"]
    missing = [w for w in want if w not in out]
    check(not missing, f"table lacks {missing}:\n{out}")
    check(lines[0].split() == ["node", doc["node"]], f"the node is not the first line: {lines[0]}")
    check("\x1b" not in out and "bad?[31mred?line" in out, f"control characters shown raw: {out!r}")
    row_c = [x for x in lines if "cccccccc" in x][0]
    check(row_c.split()[1] == "no" and "-" in row_c.split()[2:], f"peer C's row: {row_c}")


@R.test
def status_answered_with_an_error_status_exits_1():
    """A KME (or anything not hykexd) answers STATUS with status 4: not a healthy node."""
    sock = f"{WORK}/kme.sock"
    t = fake_hykexd(sock, {"status": 4, "message": "unknown command STATUS"}, conns=1)
    r = run(HYKEX, "status", "--unix", sock)
    t.join(5)
    check(r.returncode == 1 and f"Unix socket {sock} answered STATUS with status 4 "
          "(unknown command STATUS)" in r.stderr and "status" in r.stdout,
          f"exit {r.returncode}: {r.stderr.strip()!r} {r.stdout!r}")


@R.test
def status_of_a_real_node():
    def sh(*a):
        subprocess.run(list(a), check=True, capture_output=True, cwd=WORK)
    a, b = "aaaaaaaa-0000-4000-8000-00000000000a", "bbbbbbbb-0000-4000-8000-00000000000b"
    sh(f"{ROOT}/certificates/create_ca.sh", "--out", "ca")
    sh(f"{ROOT}/certificates/generate_cert.sh", "--uuid", a, "--name", "A", "--out", "A")
    api = free_port()
    cfg = {"uuid": a, "logging_config": {"console_log_type": "warn"},
           "certificate_config": {"cert_authority_path": "A/ca.crt", "cert_path": "A/node.crt",
                                  "key_path": "A/node.key"},
           "hybridization_server_address": {"host": "127.0.0.1", "port": api},
           "peer_local_address": {"host": "127.0.0.1", "port": free_port()},
           "qkd": {"protocol": "none"},
           "trusted_peers": {b: {"address": {"host": "127.0.0.1", "port": free_port()}}}}
    json.dump(cfg, open(f"{WORK}/A.json", "w"))
    R.start("A", [f"{BIN}/hykexd", "-c", "A.json"], f"{WORK}/A.log", cwd=WORK)
    raw = run(HYKEX, "status", "--json", "-c", f"{WORK}/A.json")
    table = run(HYKEX, "status", "--address", f"127.0.0.1:{api}")
    R.stop("A")
    if os.environ.get("HYKEX_SHOW"):
        print(table.stdout)
    check(raw.returncode == 0 and table.returncode == 0, f"{raw.stderr} {table.stderr}")
    doc, out = json.loads(raw.stdout), table.stdout
    missing = [f"{k}={v}" for k, v in scalars(doc).items()
               if k not in out or (k not in ("uptime_s", "uptime") and shown(v) not in out)]
    missing += [k for k, v in doc.items() if isinstance(v, (dict, list)) and k not in out]
    missing += [p["uuid"] for p in doc.get("peers", []) if p["uuid"] not in out]
    check(doc.get("node") == a and not missing, f"table lacks {missing}:\n{out}")


R.run()
