#!/usr/bin/env python3
"""The GPU check bundle's memory check: libtorch's device memory figures
while `switchyard serve` serves CLIP (TorchScript), and what an idle unload
hands back to the driver.

  1. serve with SWITCHYARD_MODEL_IDLE_TTL_S=--ttl, --no-faces, CLIP_ENGINE=torchscript;
  2. a burst of image and text requests; then, with no traffic, `/info`
     (`device_memory`, `allocator_cache`, `cuda_settings`) and `/metrics`
     (`switchyard_device_memory_bytes{device, kind}`) read twice, and nvidia-smi's
     view of the process;
  3. wait for the idle unload (`/info` residency), read them again: the
     reserved bytes before and after are the release, measured;
  4. one more request: the models come back.

On a GPU it must see: allocated > 0, reserved >= allocated, peak >= allocated,
/metrics equal to /info, after the unload reserved lower than before and
`allocator_cache.releases` >= 1 with no error. On the CPU (--device cpu, the
smoke run where there is no GPU) it must see no figures at all, no device
memory series, and the unload and reload still work.

Prints `RESULT:` lines (collected by run.sh's summary) and writes --json.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

MIB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, ctype: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if ctype:
        req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def info(base: str) -> dict:
    status, body = http("GET", f"{base}/info")
    if status != 200:
        raise SystemExit(f"/info answered {status}: {body[:500]!r}")
    return json.loads(body)


def metric_figures(base: str) -> dict:
    """{(device, kind): bytes} from /metrics."""
    _, body = http("GET", f"{base}/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("switchyard_device_memory_bytes{"):
            labels, value = line[len("switchyard_device_memory_bytes{"):].rsplit("} ", 1)
            parts = dict(p.split("=", 1) for p in labels.split(","))
            out[(parts["device"].strip('"'), parts["kind"].strip('"'))] = int(value)
    return out


def nvidia_smi_process_mib(pid: int) -> int | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 2 and fields[0] == str(pid) and fields[1].isdigit():
            return int(fields[1])
    return None


def figures(i: dict, device: str) -> dict | None:
    return next((d for d in i.get("device_memory") or [] if d["device"] == device), None)


def mib(n) -> str:
    return "-" if n is None else f"{n / MIB:.1f} MiB"


def wait_until(what: str, limit_s: float, pred):
    deadline = time.monotonic() + limit_s
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {limit_s:.0f} s")
        time.sleep(0.25)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="the switchyard binary")
    ap.add_argument("--images", required=True, help="a folder of JPEG/PNG images to send")
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (the smoke run)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--ttl", type=int, default=6, help="SWITCHYARD_MODEL_IDLE_TTL_S")
    ap.add_argument("--requests", type=int, default=48)
    ap.add_argument("--log", help="the server's stderr goes here")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, DEVICE=args.device, CLIP_ENGINE="torchscript", DTYPE=args.dtype,
               SWITCHYARD_MODEL_IDLE_TTL_S=str(args.ttl), SWITCHYARD_PORT=str(port), SWITCHYARD_LOG="info")
    log = open(args.log or os.devnull, "w")
    server = subprocess.Popen([args.bin, "serve", "--no-faces"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        return run(args, base, server)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()


def run(args, base: str, server: subprocess.Popen) -> int:
    def ready():
        if server.poll() is not None:
            raise SystemExit(f"switchyard serve exited {server.returncode} before it was ready (see --log)")
        try:
            return http("GET", f"{base}/ready")[0] == 200
        except OSError:
            return False

    t = time.monotonic()
    wait_until("the server getting ready", 120, ready)
    print(f"ready in {time.monotonic() - t:.1f} s")
    paths = sorted(glob.glob(os.path.join(args.images, "*.jpg")) + glob.glob(os.path.join(args.images, "*.png")))
    if not paths:
        raise SystemExit(f"no images in {args.images}")
    t = time.monotonic()
    for n in range(args.requests):
        p = paths[n % len(paths)]
        status, body = http("POST", f"{base}/v1/embed/image", open(p, "rb").read(), "application/octet-stream")
        if status != 200:
            raise SystemExit(f"/v1/embed/image answered {status} for {p}: {body[:300]!r}")
        texts = [f"a photo of thing number {n * 8 + k}" for k in range(8)]
        status, body = http("POST", f"{base}/v1/embed/text", json.dumps({"texts": texts}).encode(), "application/json")
        if status != 200:
            raise SystemExit(f"/v1/embed/text answered {status}: {body[:300]!r}")
    print(f"{args.requests} image and {args.requests} text requests in {time.monotonic() - t:.1f} s")

    serving = info(base)
    device = serving["device"]
    metrics = metric_figures(base)
    again = info(base)  # no traffic in between: the same figures
    proc_mib = nvidia_smi_process_mib(server.pid)
    print("serving: device", device, "device_memory", json.dumps(serving.get("device_memory")),
          "allocator_cache", json.dumps(serving.get("allocator_cache")),
          "cuda_settings", json.dumps(serving.get("cuda_settings")), "nvidia-smi", proc_mib, "MiB")
    if serving.get("device_memory_error"):
        raise SystemExit(f"/info says the figures could not be read: {serving['device_memory_error']}")
    result: dict = {"device": device, "serving": serving.get("device_memory"), "nvidia_smi_serving_mib": proc_mib,
                    "cuda_settings": serving.get("cuda_settings")}

    if args.device == "cpu":
        if serving.get("device_memory") != [] or metrics:
            raise SystemExit(f"the CPU reports device memory: /info {serving.get('device_memory')}, /metrics {metrics}")
        for key in ("allocator_cache", "cuda_settings", "device_memory_error"):
            if serving.get(key) is not None:
                raise SystemExit(f"the CPU reports {key}: {serving[key]}")
    else:
        f = figures(serving, device)
        if f is None:
            raise SystemExit(f"/info has no device_memory for {device}: {serving.get('device_memory')}")
        a, r, p = f["allocated_bytes"], f["reserved_bytes"], f["peak_bytes"]
        if not (a and a > 0 and r >= a and p is not None and p >= a):
            raise SystemExit(f"implausible figures for {device}: {f}")
        if figures(again, device) != f:
            raise SystemExit(f"the figures moved with no traffic: {f} then {figures(again, device)}")
        want = {(device, "allocated"): a, (device, "reserved"): r, (device, "peak"): p}
        if any(metrics.get(k) != v for k, v in want.items()):
            raise SystemExit(f"/metrics {metrics} differs from /info {want}")
        print(f"RESULT: memory serving CLIP {args.dtype} on {device}: allocated {mib(a)}, reserved {mib(r)}, "
              f"peak {mib(p)}; nvidia-smi {proc_mib} MiB for the process; /metrics agrees")

    t = time.monotonic()
    idle = wait_until("the idle unload", args.ttl + 60, lambda: (lambda i: i if not i["residency"]["clip"]["loaded"] else None)(info(base)))
    time.sleep(1.0)  # let nvidia-smi catch up
    idle = info(base)
    proc_mib_idle = nvidia_smi_process_mib(server.pid)
    print(f"idle unload after {time.monotonic() - t:.1f} s more: device_memory", json.dumps(idle.get("device_memory")),
          "allocator_cache", json.dumps(idle.get("allocator_cache")), "nvidia-smi", proc_mib_idle, "MiB")
    result.update(idle=idle.get("device_memory"), allocator_cache=idle.get("allocator_cache"),
                  nvidia_smi_idle_mib=proc_mib_idle)
    if args.device != "cpu":
        before, after = figures(serving, device), figures(idle, device)
        cache = idle.get("allocator_cache") or {}
        if after is None or cache.get("releases", 0) < 1 or cache.get("last_error"):
            raise SystemExit(f"no release after the idle unload: device_memory {after}, allocator_cache {cache}")
        released = before["reserved_bytes"] - after["reserved_bytes"]
        if released <= 0:
            raise SystemExit(f"reserved memory did not go down: {mib(before['reserved_bytes'])} -> "
                             f"{mib(after['reserved_bytes'])}")
        result["released_bytes"] = released
        print(f"RESULT: memory idle unload on {device}: reserved {mib(before['reserved_bytes'])} -> "
              f"{mib(after['reserved_bytes'])} (released {mib(released)}; the companion counted "
              f"{mib(cache.get('released_bytes'))} in {cache.get('releases')} release(s)), allocated "
              f"{mib(after['allocated_bytes'])}; nvidia-smi {proc_mib} -> {proc_mib_idle} MiB for the process")
    elif idle.get("device_memory") != []:
        raise SystemExit(f"the CPU reports device memory after the unload: {idle.get('device_memory')}")

    status, body = http("POST", f"{base}/v1/embed/text", json.dumps({"texts": ["back again"]}).encode(),
                        "application/json")
    if status != 200:
        raise SystemExit(f"the request after the unload answered {status}: {body[:300]!r}")
    back = info(base)
    if not back["residency"]["clip"]["loaded"] or back["residency"]["clip"]["reloads"] < 1:
        raise SystemExit(f"the models did not come back: {back['residency']}")
    result["after_reload"] = back.get("device_memory")
    print("after the reload: device_memory", json.dumps(back.get("device_memory")))
    if args.device == "cpu":
        print("the CPU: no device memory figures, unload and reload work")
    if args.json:
        json.dump(result, open(args.json, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
