#!/usr/bin/env bash
# Usage: scripts/k8s-test.sh --image IMAGE --name PREFIX --certs DIR
#
# Runs deploy/k8s/hykex.yaml with `podman kube play` as a three-node network (Alice, Bob, Charlie)
# and the QKD simulator, and checks that Alice and Bob, then Bob and Charlie, get the same keys.
# scripts/package-test.sh calls it with the image it built from the packages, a name prefix of
# its own and DIR = a deploy/docker copy with certificates (make-certs.sh --dir DIR).
#
# Podman 4.3 plays Pods, Deployments and PersistentVolumeClaims, not StatefulSets, Services or
# Secrets, so the manifest is translated for it (and only for it) by the Python below: each
# StatefulSet/Deployment becomes a Pod named PREFIX-<name> with the same containers, init
# container and volumes; its volumeClaimTemplate a PersistentVolumeClaim PREFIX-state-<name>;
# the Secret volume a hostPath to DIR/nodes/<Node>/certs; the emptyDir a PersistentVolumeClaim
# PREFIX-certs-<name> (podman 4.3 would make one volume "certs" shared by all pods); ConfigMaps
# are renamed PREFIX-<name> (podman keeps each in a volume of its name); a Service name resolves
# through hostAliases to its pod's fixed address on a network PREFIX. Everything named PREFIX* is
# removed.
set -euo pipefail
cd "$(dirname "$0")/.."
image="" name="" certs=""
while [ $# -gt 0 ]; do
    case $1 in
        --image) image=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --certs) certs=$2; shift 2 ;;
        *) sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
    esac
done
[ -n "$image" ] && [ -n "$name" ] && [ -d "$certs/nodes" ] || { sed -n '2,6s/^# \{0,1\}//p' "$0" >&2; exit 2; }
say() { echo "k8s-test.sh: $*" >&2; }
fail() { say "FAIL: $*"; exit 1; }
t0=$(date +%s)
work=$(mktemp -d "/tmp/$name.XXXXXX")

cleanup() {
    set +e
    podman pod ls -q --filter "name=^$name" | xargs -r podman pod rm -f >/dev/null 2>&1
    podman volume ls -q | grep "^$name" | xargs -r podman volume rm -f >/dev/null 2>&1
    podman network rm -f "$name" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT

# A /24 of 10.200-254.x.0 not used by another podman network.
used=$(podman network ls -q | xargs -r podman network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}' 2>/dev/null || true)
net=""
for _ in $(seq 50); do
    cand="10.$((200 + RANDOM % 55)).$((RANDOM % 256))"
    case " $used " in *" $cand.0/24 "*) continue ;; esac
    net=$cand
    break
done
[ -n "$net" ] || fail "no free subnet"
podman network create --subnet "$net.0/24" "$name" >/dev/null

python3 - "$name" "$image" "$certs" "$net" "$work" <<'EOF'
import sys, yaml
name, image, certs, net, work = sys.argv[1:]
docs = [d for d in yaml.safe_load_all(open("deploy/k8s/hykex.yaml")) if d]
services = [d["metadata"]["name"] for d in docs if d["kind"] == "Service"]
ip = {s: "%s.%d" % (net, 10 + i) for i, s in enumerate(services)}
aliases = [{"ip": ip[s], "hostnames": [s]} for s in services]
# podman reads one ConfigMap per --configmap file, and keeps each in a volume of its name: give
# them our prefix.
for d in docs:
    if d["kind"] == "ConfigMap":
        d["metadata"]["name"] = "%s-%s" % (name, d["metadata"]["name"])
        yaml.safe_dump(d, open("%s/cm-%s.yaml" % (work, d["metadata"]["name"]), "w"))
plays = []
for d in docs:
    if d["kind"] not in ("StatefulSet", "Deployment"):
        continue
    app = d["metadata"]["name"]
    spec = d["spec"]["template"]["spec"]
    spec["hostAliases"] = aliases
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        c["image"] = image
        c.pop("livenessProbe", None)  # podman 4.3 turns probes into health checks; not needed here
        c.pop("readinessProbe", None)
        c.pop("ports", None)  # podman 4.3 would publish each containerPort on the host
    out = []
    for v in spec.get("volumes", []):
        if "configMap" in v:
            v["configMap"]["name"] = "%s-%s" % (name, v["configMap"]["name"])
        if "emptyDir" in v:  # podman 4.3 makes it a volume named as the pod's volume: name it ours
            claim = "%s-%s-%s" % (name, v["name"], app)
            v.pop("emptyDir")
            v["persistentVolumeClaim"] = {"claimName": claim}
            out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}}})
        if "secret" in v:
            node = app.split("-", 1)[1].capitalize()
            v.pop("secret")
            v["hostPath"] = {"path": "%s/nodes/%s/certs" % (certs, node), "type": "Directory"}
    for t in d["spec"].get("volumeClaimTemplates", []):
        claim = "%s-%s-%s" % (name, t["metadata"]["name"], app)
        out.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": claim}, "spec": t["spec"]})
        spec["volumes"].append({"name": t["metadata"]["name"],
                                "persistentVolumeClaim": {"claimName": claim}})
    # podman 4.3 removes a finished init container while it may still run ("once", the default)
    # and fails the play; "always" keeps it, which changes nothing else here.
    meta = {"name": "%s-%s" % (name, app), "labels": d["spec"]["template"]["metadata"]["labels"],
            "annotations": {"io.podman.annotations.init.container.type": "always"}}
    out.append({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": spec})
    f = "%s/%s.yaml" % (work, app)
    yaml.safe_dump_all(out, open(f, "w"))
    cm = ["%s/cm-%s.yaml" % (work, v["configMap"]["name"]) for v in spec["volumes"] if "configMap" in v]
    plays.append("%s %s %s %s" % (app, f, ip[app], ",".join(cm)))
open(work + "/plays", "w").write("\n".join(plays) + "\n")
EOF

while read -r app file ip cms; do
    podman kube play --network "$name" --ip "$ip" --configmap "$cms" "$file" \
        >"$work/play-$app.log" 2>&1 || { cat "$work/play-$app.log" >&2; fail "kube play $app"; }
done <"$work/plays"
say "played $(wc -l <"$work/plays") pods on network $name ($net.0/24)"

for n in alice bob charlie; do
    c=$name-hykex-$n-hykexd
    ok=0
    for _ in $(seq 120); do
        if podman logs "$c" 2>&1 | grep -q "peer link up"; then ok=1; break; fi
        sleep 0.5
    done
    [ "$ok" = 1 ] || { podman logs "$c" >&2; fail "$n has no peer link"; }
done
say "alice, bob and charlie are up with peer links"

# Alice-Bob with the packaged request, then Bob-Charlie with the same request re-addressed.
pair() { # a b request-file
    local a=$1 b=$2 req=$3 ka kb
    for n in "$a" "$b"; do
        podman exec -i "$name-hykex-$n-hykexd" sh -c 'cat >/tmp/req.json && hykex run /tmp/req.json --keys 3 -c /etc/hykex/conf/config.json' \
            <"$req" >"$work/$n.out" 2>"$work/$n.err" &
        eval "pid_$n=\$!"
    done
    wait "$(eval echo "\$pid_$a")" || { cat "$work/$a."* >&2; fail "hykex run in $a"; }
    wait "$(eval echo "\$pid_$b")" || { cat "$work/$b."* >&2; fail "hykex run in $b"; }
    ka=$(grep -o '"key_buffer": \[[^]]*\]' "$work/$a.out" || true)
    kb=$(grep -o '"key_buffer": \[[^]]*\]' "$work/$b.out" || true)
    [ "$(printf '%s\n' "$ka" | grep -c key_buffer)" = 3 ] && [ "$ka" = "$kb" ] ||
        { cat "$work/$a.out" "$work/$b.out" >&2; fail "$a and $b: keys differ or missing"; }
    say "$a and $b got the same 3 keys ($(printf '%s' "$ka" | sha256sum | cut -c1-16))"
}
pair alice bob requests/open_connect_request.json
sed -e 's/aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa/cccccccc-cccc-cccc-cccc-cccccccccccc/' \
    requests/open_connect_request.json >"$work/bc.json"
# source Bob, destination Charlie: swap so that the source is Bob
python3 - "$work/bc.json" <<'EOF'
import json, sys
p = sys.argv[1]; r = json.load(open(p))
d = r["data"]; d["source"], d["destination"] = d["destination"], d["source"]
json.dump(r, open(p, "w"))
EOF
pair bob charlie "$work/bc.json"
say "passed in $(($(date +%s) - t0)) s"
