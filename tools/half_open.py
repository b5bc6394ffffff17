#!/usr/bin/env python3
"""What `switchyard serve` still serves while N half-open connections are held
against it (each sent half a request head, then nothing: a slowloris), with
its default settings (SWITCHYARD_HEADER_READ_TIMEOUT_S=30, the connection cap
at the open-file limit less 256).

Starts its own server (target/release/switchyard, plugins/, models/), then:
1. baseline: CLIENTS threads post one text each to /v1/embed/text for SECONDS;
2. opens N half-open connections and measures the same load while they are held,
   with the server's open descriptors and /metrics connection gauge;
3. waits for the header timeout and counts how many the server closed, and when.

    .venv/bin/python tools/half_open.py [--connections 10000] [--seconds 15] [--clients 4]

Prints a JSON report and a markdown table row for docs/benchmarks.md.
"""

import argparse
import http.client
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HALF_HEAD = b"POST /v1/embed/text HTTP/1.1\r\nHost: x\r\nContent-Type: appl"
BODY = json.dumps({"texts": ["a photo of a dog on a beach"]}).encode()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.read()


def wait_ready(port, proc):
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the server exited with {proc.returncode}")
        try:
            if get(port, "/ready")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("the server was not ready after 180 s")


def load(port, seconds, clients):
    """CLIENTS keep-alive clients posting texts for SECONDS: requests/s and latency."""
    latencies, failures = [], []
    stop = time.time() + seconds

    def client():
        conn = None
        while time.time() < stop:
            t = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                conn.request("POST", "/v1/embed/text", BODY, {"Content-Type": "application/json"})
                r = conn.getresponse()
                r.read()
                if r.status == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    failures.append(r.status)
            except OSError as e:
                failures.append(type(e).__name__)
                conn = None

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    q = lambda p: round(1e3 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) if latencies else None
    return {
        "requests": len(latencies),
        "per_s": round(len(latencies) / seconds, 1),
        "p50_ms": q(0.50),
        "p95_ms": q(0.95),
        "p99_ms": q(0.99),
        "failures": len(failures),
        "failure_kinds": sorted({str(f) for f in failures}),
    }


def metric(port, name):
    text = get(port, "/metrics")[1].decode()
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--header-timeout-s", type=int, default=30)
    a = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_") and k not in ("DEVICE", "FORCE_CPU")}
    env["SWITCHYARD_HEADER_READ_TIMEOUT_S"] = str(a.header_timeout_s)
    exe = ROOT / "target/release/switchyard"
    cmd = [str(exe), "serve", "--port", str(port), "--plugin-dir", str(ROOT / "plugins"),
           "--model-dir", str(ROOT / "models"), "--no-faces", "--log", "warn"]
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(ROOT / "target/half_open_serve.log", "w"))
    report = {"connections_asked": a.connections, "clients": a.clients, "seconds": a.seconds,
              "header_read_timeout_s": a.header_timeout_s, "cores": os.cpu_count()}
    try:
        wait_ready(port, proc)
        info = json.loads(get(port, "/info")[1])
        report["max_connections"] = info["connections"]["max_connections"]
        pid = info["pid"]
        load(port, 3, a.clients)  # warm-up
        report["baseline"] = load(port, a.seconds, a.clients)

        held, refused = [], 0
        t = time.time()
        for _ in range(a.connections):
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(HALF_HEAD)
                held.append(s)
            except OSError:
                refused += 1
        opened_at = time.time()
        report["opened"] = len(held)
        report["open_failed"] = refused
        report["open_s"] = round(opened_at - t, 2)
        time.sleep(1)
        report["server_fds_held"] = len(os.listdir(f"/proc/{pid}/fd"))
        report["connections_open_gauge"] = metric(port, "switchyard_connections_open")
        report["under_siege"] = load(port, a.seconds, a.clients)

        # The header timeout runs from each connection's start: wait it out for the last one
        # opened, then count the closed ones.
        remaining = a.header_timeout_s + 5 - (time.time() - opened_at)
        if remaining > 0:
            time.sleep(remaining)
        closed = 0
        for s in held:
            s.setblocking(False)
            try:
                data = s.recv(1024)
                closed += data == b"" or data.startswith(b"HTTP/1.1 408")
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        report["closed_by_server_within_timeout_plus_5s"] = closed
        report["header_timeouts_counted"] = metric(port, 'switchyard_connections_closed_total{reason="header_timeout"}')
        for s in held:
            s.close()
        time.sleep(1)
        report["server_fds_after"] = len(os.listdir(f"/proc/{pid}/fd"))
        report["after"] = load(port, a.seconds, a.clients)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    print(json.dumps(report, indent=2))
    b, u = report["baseline"], report["under_siege"]
    print(f"| {report['opened']} half-open held | {b['per_s']} req/s, p50 {b['p50_ms']} ms, p95 {b['p95_ms']} ms "
          f"| {u['per_s']} req/s, p50 {u['p50_ms']} ms, p95 {u['p95_ms']} ms, {u['failures']} failed "
          f"| {report['closed_by_server_within_timeout_plus_5s']} closed by the header timeout |")


if __name__ == "__main__":
    main()
