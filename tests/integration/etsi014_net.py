"""Two hykexd nodes with ETSI 014 servers and the simulator's KMEs, on loopback: the PKI, the
configuration and a 014 client, shared by tests/integration/etsi014_server_test.py and
bench/etsi014.py.

The nodes' network PKI is the project's (ML-DSA, certificates/); the SAEs' PKI is ECDSA P-256
made with the system's openssl command: the clients' own OpenSSL (curl's, Python's) may have no
ML-DSA. kmeA / kmeB are the 014 servers' certificates (IP 127.0.0.1), SAE_* the SAEs' client
certificates (common name = SAE id), all under WORK.
"""
import json
import os
import subprocess

import requests

U = {"A": "a" * 8 + "-aaaa-aaaa-aaaa-" + "a" * 12, "B": "b" * 8 + "-bbbb-bbbb-bbbb-" + "b" * 12}


def make_pki(work, root, saes):
    def sh(*argv):
        subprocess.run(list(argv), check=True, capture_output=True, cwd=work)
    sh(f"{root}/certificates/create_ca.sh", "--out", "ca")
    for n in "AB":
        sh(f"{root}/certificates/generate_cert.sh", "--uuid", U[n], "--name", n, "--ip",
           "127.0.0.1", "--out", n)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sh("openssl", "req", "-x509", *ec, "-keyout", "saeca.key", "-out", "saeca.crt", "-days", "2",
       "-subj", "/CN=SAE CA")
    names = [("kmeA", "IP:127.0.0.1"), ("kmeB", "IP:127.0.0.1")] + [(s, None) for s in saes]
    for name, san in names:
        sh("openssl", "req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj",
           f"/CN={name}")
        ext = f"{work}/{name}.ext"
        with open(ext, "w") as f:
            f.write(f"subjectAltName={san}\n" if san else "extendedKeyUsage=clientAuth\n")
        sh("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "saeca.crt", "-CAkey",
           "saeca.key", "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", ext)
        os.chmod(f"{work}/{name}.key", 0o600)


def node_config(node, ports, local, remote, **etsi014):
    """A node's configuration: ports has kA/kB (KMEs), apiA/apiB, peerA/peerB, eA/eB (014)."""
    other = "B" if node == "A" else "A"
    e = {"host": "127.0.0.1", "port": ports["e" + node], "cert": f"kme{node}.crt",
         "key": f"kme{node}.key", "ca": "saeca.crt", "local_saes": local, "remote_saes": remote,
         "key_sources": "QKD,ML-KEM-768"}
    e.update(etsi014)
    return {"uuid": U[node],
            "certificate_config": {"cert_authority_path": f"{node}/ca.crt",
                                   "cert_path": f"{node}/node.crt",
                                   "key_path": f"{node}/node.key"},
            "hybridization_server_address": {"host": "127.0.0.1", "port": ports["api" + node]},
            "qkd_address": {"host": "127.0.0.1", "port": ports["k" + node]},
            "peer_local_address": {"host": "127.0.0.1", "port": ports["peer" + node]},
            "trusted_peers": {U[other]: {"address": {"host": "127.0.0.1",
                                                     "port": ports["peer" + other]}}},
            "api": {"etsi014": e}}


def sim_net(work, ports, sim_014=None):
    """The simulator's network: 004 JSON KMEs for the nodes, an unbounded link; sim_014 =
    {"A": [saes], "B": [saes]} also gives KME_A / KME_B 014 servers (ports s14A / s14B)."""
    kmes = []
    for n in "AB":
        k = {"id": f"KME_{n}", "node": U[n], "etsi004_json": {"port": ports["k" + n]}}
        if sim_014 is not None:
            k["saes"] = sim_014[n]
            k["etsi014"] = {"port": ports["s14" + n], "cert": f"{work}/kme{n}.crt",
                            "key": f"{work}/kme{n}.key", "ca": f"{work}/saeca.crt"}
        kmes.append(k)
    return {"kmes": kmes, "links": [{"id": "ab", "kmes": ["KME_A", "KME_B"], "rate_bps": 0}]}


def write(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1)


class Client:
    """An SAE's 014 client (Python requests): one keep-alive session per server, or a new
    connection per call (fresh=True)."""

    def __init__(self, work, sae, fresh=False):
        self.cert = (f"{work}/{sae}.crt", f"{work}/{sae}.key")
        self.ca = f"{work}/saeca.crt"
        self.fresh = fresh
        self.session = None if fresh else requests.Session()

    def call(self, port, other, call, method="GET", body=None, params=None):
        """(status, JSON body or None)."""
        url = f"https://127.0.0.1:{port}/api/v1/keys/{other}/{call}"
        r = (requests if self.fresh else self.session).request(
            method, url, params=params, data=None if body is None else json.dumps(body),
            headers={"Content-Type": "application/json"}, cert=self.cert, verify=self.ca,
            timeout=30)
        return r.status_code, (r.json() if r.content else None)
