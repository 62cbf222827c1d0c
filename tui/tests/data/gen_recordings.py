#!/usr/bin/env python3
"""Writes the TUI's test recordings (deterministic; re-run to regenerate).

seed.jsonl: the galactic-fhir incident of the seed story as Hubble jsonpb
lines (one GetFlowsResponse per line): empire pods GET DarthVader and are
FORWARDED (request + 200 response), the payer GETs Anakin and is DROPPED by
the L7 policy (drop_reason_desc POLICY_DENIED; the proxy's 403 answer
is an http-response FORWARDED), DNS
lookups to kube-dns, and a few L3/L4 drops by the deny-all policy.

garbage.jsonl: the first flows of seed.jsonl interleaved with lines that
are not flows (truncated JSON, text, a bare number, an object without a
flow), which the TUI must skip, count and report.
"""
import json, os

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = {"kind-worker": "kind-kind/kind-worker", "kind-worker2": "kind-kind/kind-worker2",
        "kind-worker3": "kind-kind/kind-worker3", "kind-control-plane": "kind-kind/kind-control-plane"}
NS = "galactic-fhir"
FHIR = "/intersystems/fhir/r5/Patient/"

def ep(name, ident, labels, ip, node, ns=NS, pod=None):
    return dict(name=name, identity=ident, labels=labels, ip=ip, node=node, ns=ns, pod=pod or name)

SERVER = ep("coruscanthealth", 21431, {"app": "coruscanthealth", "tier": "fhir-server"}, "10.244.1.10", "kind-worker", pod="coruscanthealth-5c9f7d8b6-x8k2p")
EMPIRE = [
    ep("grandmedicalfacility", 50212, {"app": "grandmedicalfacility", "org": "empire"}, "10.244.2.20", "kind-worker2", pod="grandmedicalfacility-7b9d-4qzl"),
    ep("medicaldroid-fx-6", 50213, {"app": "medicaldroid", "model": "fx-6", "org": "empire"}, "10.244.2.21", "kind-worker2", pod="medicaldroid-fx-6-6d4c-8vt2"),
    ep("medicaldroid-dd-13", 50214, {"app": "medicaldroid", "model": "dd-13", "org": "empire"}, "10.244.3.22", "kind-worker3", pod="medicaldroid-dd-13-59f8-k2w9"),
    ep("medicaldroid-2-1b", 50215, {"app": "medicaldroid", "model": "2-1b", "org": "empire"}, "10.244.3.23", "kind-worker3", pod="medicaldroid-2-1b-7c6b-pp4r"),
]
PAYER = ep("payer", 61004, {"app": "galactic-payer", "org": "payer"}, "10.244.3.30", "kind-worker3", pod="payer-6f8d9c-7xk4m")
DNS = ep("kube-dns", 102, {"k8s-app": "kube-dns"}, "10.244.0.2", "kind-control-plane", ns="kube-system", pod="coredns-6f6b679f8f-2xq7d")

def endpoint(e):
    labels = ["k8s:%s=%s" % (k, v) for k, v in sorted(e["labels"].items())]
    labels.append("k8s:io.kubernetes.pod.namespace=%s" % e["ns"])
    return {"ID": 100 + e["identity"] % 1000, "identity": e["identity"], "cluster_name": "kind-kind",
            "namespace": e["ns"], "labels": labels, "pod_name": e["pod"],
            "workloads": [{"name": e["name"], "kind": "Deployment"}]}

BASE = 1726742900  # 2024-09-19T10:48:20Z

def ts(t):
    s = int(t); ns = int(round((t - s) * 1e9))
    import datetime
    d = datetime.datetime.fromtimestamp(BASE + s, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".%09dZ" % ns

def line(flow, node):
    flow["node_name"] = node
    return {"flow": flow, "node_name": node, "time": flow["time"]}

def http(t, src, dst, sport, method, path, verdict, reply=False, code=0, lat_ms=0.0, drop=False):
    url = "http://coruscanthealth.galactic-fhir.svc.cluster.local:52773" + path
    a, b = (dst, src) if reply else (src, dst)
    f = {"time": ts(t), "uuid": "%08x-0000-4000-8000-%012x" % (int(t * 1000), sport),
         "verdict": verdict,
         "IP": {"source": a["ip"], "destination": b["ip"], "ipVersion": "IPv4"},
         "l4": {"TCP": {"source_port": 52773 if reply else sport, "destination_port": sport if reply else 52773}},
         "source": endpoint(a), "destination": endpoint(b), "Type": "L7",
         "l7": {"type": "RESPONSE" if reply else "REQUEST",
                "http": {"method": method, "url": url, "protocol": "HTTP/1.1"}},
         "event_type": {"type": 129}, "traffic_direction": "EGRESS", "is_reply": reply,
         "interface": {"index": 7, "name": "lxc" + src["name"][:8]}}
    if reply:
        f["l7"]["latency_ns"] = str(int(lat_ms * 1e6))
        f["l7"]["http"]["code"] = code
        f["Summary"] = "HTTP/1.1 %d %dms (%s %s)" % (code, round(lat_ms), method, url)
    else:
        f["Summary"] = "HTTP/1.1 %s %s" % (method, url)
    if drop:
        f["drop_reason"] = 133
        f["drop_reason_desc"] = "POLICY_DENIED"
        f["policy_match_type"] = 2
    return line(f, NODE[src["node"]])

def dns(t, src, sport, q, reply=False):
    a, b = (DNS, src) if reply else (src, DNS)
    f = {"time": ts(t), "verdict": "FORWARDED",
         "IP": {"source": a["ip"], "destination": b["ip"], "ipVersion": "IPv4"},
         "l4": {"UDP": {"source_port": 53 if reply else sport, "destination_port": sport if reply else 53}},
         "source": endpoint(a), "destination": endpoint(b), "Type": "L7",
         "l7": {"type": "RESPONSE" if reply else "REQUEST",
                "dns": {"query": q, "qtypes": ["A"], "observation_source": "proxy"}},
         "event_type": {"type": 129}, "traffic_direction": "EGRESS", "is_reply": reply,
         "Summary": ("DNS Answer \"10.96.12.7\" TTL: 30 (Proxy %s A)" if reply else "DNS Query %s A") % q}
    if reply:
        f["l7"]["dns"]["ips"] = ["10.96.12.7"]; f["l7"]["dns"]["ttl"] = 30; f["l7"]["latency_ns"] = "412000"
    return line(f, NODE[src["node"]])

def l4drop(t, src, dst, sport, dport):
    f = {"time": ts(t), "verdict": "DROPPED", "drop_reason": 133, "drop_reason_desc": "POLICY_DENIED",
         "IP": {"source": src["ip"], "destination": dst["ip"], "ipVersion": "IPv4"},
         "l4": {"TCP": {"source_port": sport, "destination_port": dport, "flags": {"SYN": True}}},
         "source": endpoint(src), "destination": endpoint(dst), "Type": "L3_L4",
         "event_type": {"type": 1, "sub_type": 133}, "traffic_direction": "EGRESS",
         "policy_match_type": 0, "Summary": "TCP Flags: SYN",
         "egress_denied_by": [{"name": "denyall-coruscanthealth", "kind": "CiliumClusterwideNetworkPolicy",
                               "labels": ["k8s:io.cilium.k8s.policy.name=denyall-coruscanthealth"], "revision": "3"}]}
    return line(f, NODE[src["node"]])

def build():
    out = []
    port = 40000
    t = 0.0
    for i in range(60):
        t = i * 1.0
        e = EMPIRE[i % 4]
        port += 1
        out.append((t + 0.010, dns(t + 0.010, e, port, "coruscanthealth.galactic-fhir.svc.cluster.local.")))
        out.append((t + 0.0104, dns(t + 0.0104, e, port, "coruscanthealth.galactic-fhir.svc.cluster.local.", reply=True)))
        port += 1
        out.append((t + 0.020, http(t + 0.020, e, SERVER, port, "GET", FHIR + "DarthVader", "FORWARDED")))
        lat = 3.0 + (i % 7) * 0.9
        out.append((t + 0.020 + lat / 1000, http(t + 0.020 + lat / 1000, e, SERVER, port, "GET", FHIR + "DarthVader", "FORWARDED", reply=True, code=200, lat_ms=lat)))
        if i % 2 == 1:
            port += 1
            out.append((t + 0.500, http(t + 0.500, PAYER, SERVER, port, "GET", FHIR + "Anakin", "DROPPED", drop=True)))
            out.append((t + 0.5012, http(t + 0.5012, PAYER, SERVER, port, "GET", FHIR + "Anakin", "FORWARDED", reply=True, code=403, lat_ms=1.2)))
        if i % 10 == 5:
            port += 1
            out.append((t + 0.700, l4drop(t + 0.700, PAYER, SERVER, port, 1972)))
    out.sort(key=lambda x: x[0])
    return [json.dumps(l, separators=(",", ":")) for _, l in out]

def main():
    lines = build()
    with open(os.path.join(HERE, "seed.jsonl"), "w") as f:
        f.write("\n".join(lines) + "\n")
    garbage = [
        lines[0], "this is not json", lines[1], '{"flow": {"time": "2024-09-19T10:48:2',
        "42", lines[2], '{"node_name":"kind-kind/kind-worker","time":"2024-09-19T10:48:20Z"}', "", lines[3],
        "\x00\x01binary", lines[4],
    ]
    with open(os.path.join(HERE, "garbage.jsonl"), "w") as f:
        f.write("\n".join(garbage) + "\n")

if __name__ == "__main__":
    main()
