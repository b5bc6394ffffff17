#!/usr/bin/env python3
"""The GPU check bundle's judge: reads what switchyard wrote and says PASS or not.

Every subcommand prints what it saw (so the check's log explains itself) and
exits 0 when the check passes, 77 when it does not apply here (the last line
then starts with `SKIP:` and says why), anything else when it fails. Lines
starting with `FINDING:` are collected into the summary: facts worth reading
that are not failures (e.g. ONNX models on the CPU provider because the
machine's onnxruntime is a CPU-only build).

  judge.py gpus                        one line: how many NVIDIA GPUs, from nvidia-smi and the host's probe
  judge.py selects PROBE.json KIND [INDEX] [rejected=KIND2]  the probe selected KIND (device INDEX; KIND2 passed over with a reason)
  judge.py refused PROBE.json NEEDLE...         nothing selected; the error names every NEEDLE
  judge.py probe-fields PROBE.json              GPU name, memory, compute capability, CUDA versions (vs nvidia-smi)
  judge.py driver-release PROBE.json            the NVIDIA driver release (nvidia-smi's) is in the probe
  judge.py ort-cuda ORT_LIB                     exit 0 if that onnxruntime has the CUDA provider, else 1
  judge.py embed META.json DEVICE RUNS_ON [DTYPE]  the run used DEVICE*, the CLIP towers ran on RUNS_ON*
  judge.py faces META.json JSONL PROVIDER [REF.jsonl]  both face models ran on PROVIDER; same faces as REF
  judge.py texts OUT N                          writes N captions, one a line (several scripts, emoji)
  judge.py summary RESULTS.tsv OUT.json ...     the summary (text on stdout, JSON to OUT.json)
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys

SKIP = 77


def load(path: str):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def probe_json(path: str) -> dict:
    try:
        return load(path)
    except (OSError, ValueError) as e:
        print(f"cannot read the probe's JSON {path}: {e}")
        sys.exit(1)


def nvidia_smi(query: str) -> list[list[str]]:
    """Rows of `nvidia-smi --query-gpu=QUERY`, or [] without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    if out.returncode != 0:
        return []
    return [[c.strip() for c in line.split(",")] for line in out.stdout.splitlines() if line.strip()]


def nvidia_smi_cuda_version() -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"CUDA Version:\s*([0-9.]+)", out)
    return m.group(1) if m else None


def cmd_gpus(args: list[str]) -> int:
    """`N REASON`: N = GPUs nvidia-smi lists (else the host probe's count), REASON when N is 0."""
    probe = load(args[0]) if args and os.path.exists(args[0]) else {}
    cuda = (probe.get("hardware") or {}).get("cuda") or {}
    host_n = len(cuda.get("devices") or [])
    smi = nvidia_smi("name")
    n = max(len(smi), host_n)
    if n:
        print(f"{n} nvidia-smi: {len(smi)} GPU(s); the host's probe: {host_n}")
    else:
        why = cuda.get("unavailable_reason") or "the host's probe found no CUDA device"
        smi_note = "nvidia-smi not found" if not shutil.which("nvidia-smi") else "nvidia-smi lists no GPU"
        print(f"0 {smi_note}; {why}")
    return 0


def sel_summary(report: dict) -> dict:
    sel = report.get("selection") or {}
    return {"selection": sel.get("kind"), "index": sel.get("index"), "plugin": sel.get("plugin"),
            "reason": sel.get("reason"), "error": report.get("error"),
            "rejected": [r.get("reason") for r in sel.get("rejected", [])]}


def cmd_selects(args: list[str]) -> int:
    report = probe_json(args[0])
    want = args[1]
    index = next((int(a) for a in args[2:] if a.isdigit()), None)
    passed_over = [a.split("=", 1)[1] for a in args[2:] if a.startswith("rejected=")]
    s = sel_summary(report)
    print(json.dumps(s, indent=1))
    ok = s["selection"] == want
    for kind in passed_over:
        why = [r for r in s["rejected"] if r and r.startswith(kind)]
        if why:
            print(f"{kind} was passed over, with its reason: {why[0]}")
        else:
            print(f"expected {kind} among the rejected candidates, with a reason")
            ok = False
    if ok and index is not None and s["index"] != index:
        if s["index"] is None:
            print(f"FINDING: DEVICE selected {want} but the probe's selection names no device index (expected {index})")
        else:
            print(f"expected device index {index}, the selection says {s['index']}")
            ok = False
    if ok and not (s["plugin"] or "").endswith(f"backend_{want}.so"):
        ok = False
        print(f"the selected plugin {s['plugin']} is not the {want} plugin")
    if not ok:
        print(f"expected selection {want}" + (f" index {index}" if index is not None else ""))
    return 0 if ok else 1


def cmd_refused(args: list[str]) -> int:
    report = probe_json(args[0])
    s = sel_summary(report)
    print(json.dumps(s, indent=1))
    err = s["error"] or ""
    if s["selection"]:
        print(f"expected nothing selected (an explicit device that is unavailable is an error), got {s['selection']}")
        return 1
    missing = [n for n in args[1:] if n.lower() not in err.lower()]
    if missing:
        print(f"the error does not say {missing}: {err!r}")
        return 1
    print(f"refused: {err}")
    return 0


def cuda_plugin(report: dict) -> dict:
    for p in report.get("plugins") or []:
        if p.get("named_kind") == "cuda":
            return p
    return {}


def kv(pairs) -> dict:
    return {k: v for k, v in (pairs or [])}


def cmd_probe_fields(args: list[str]) -> int:
    report = probe_json(args[0])
    cuda = (report.get("hardware") or {}).get("cuda") or {}
    devs = cuda.get("devices") or []
    problems = []
    if not devs:
        print(f"the probe lists no CUDA device: {cuda.get('unavailable_reason')}")
        return 1
    d0 = devs[0]
    plug = cuda_plugin(report)
    build = kv((plug.get("description") or {}).get("build"))
    pextra = kv((plug.get("probe") or {}).get("extra"))
    torch_v = pextra.get("libtorch_version") or build.get("torch") or ""
    m = re.search(r"\+cu(\d+)", torch_v)
    cuda_runtime = f"{int(m.group(1)) // 10}.{int(m.group(1)) % 10}" if m else None
    fields = {
        "name": d0.get("name"),
        "total_memory_bytes": d0.get("total_memory"),
        "compute_capability": d0.get("compute_capability"),
        "driver_cuda_version (hardware.cuda.driver_version)": cuda.get("driver_version"),
        "cuda_runtime (the CUDA plugin's libtorch)": f"{cuda_runtime} ({torch_v})" if cuda_runtime else None,
        "cudnn_available": pextra.get("cudnn_available"),
    }
    for k, v in fields.items():
        print(f"  {k:<52} {v}")
    if not d0.get("name"):
        problems.append("no GPU name")
    if not (isinstance(d0.get("total_memory"), int) and d0["total_memory"] > 0):
        problems.append("no GPU memory")
    if not re.fullmatch(r"\d+\.\d+", str(d0.get("compute_capability") or "")):
        problems.append("no compute capability")
    if not re.fullmatch(r"\d+\.\d+", str(cuda.get("driver_version") or "")):
        problems.append("no driver CUDA version")
    if not cuda_runtime:
        problems.append("no CUDA runtime version of the CUDA plugin's libtorch")
    smi = nvidia_smi("name,memory.total,compute_cap")
    if smi:
        name, mem_mib = smi[0][0], smi[0][1]
        cc = smi[0][2] if len(smi[0]) > 2 else None
        print(f"  nvidia-smi: {name}, {mem_mib} MiB, compute capability {cc}, CUDA {nvidia_smi_cuda_version()}")
        if name != d0.get("name"):
            problems.append(f"name {d0.get('name')!r} is not nvidia-smi's {name!r}")
        try:
            if abs(int(d0.get("total_memory") or 0) / 2**20 - float(mem_mib)) > 0.02 * float(mem_mib):
                problems.append(f"memory {d0.get('total_memory')} B is not nvidia-smi's {mem_mib} MiB")
        except ValueError:
            pass
        if cc and re.fullmatch(r"\d+\.\d+", cc) and cc != d0.get("compute_capability"):
            problems.append(f"compute capability {d0.get('compute_capability')} is not nvidia-smi's {cc}")
        smi_cuda = nvidia_smi_cuda_version()
        if smi_cuda and smi_cuda != cuda.get("driver_version"):
            problems.append(f"driver CUDA version {cuda.get('driver_version')} is not nvidia-smi's {smi_cuda}")
    for p in problems:
        print(f"problem: {p}")
    return 0 if not problems else 1


def cmd_driver_release(args: list[str]) -> int:
    text = open(args[0], encoding="utf-8").read()
    smi = nvidia_smi("driver_version")
    if not smi:
        print("nvidia-smi gives no driver version to compare with")
        return 1
    release = smi[0][0]
    print(f"nvidia-smi: driver {release}")
    if release in text:
        print(f"the probe's JSON names driver {release}")
        return 0
    print(f"the probe's JSON does not name the NVIDIA driver release {release} anywhere "
          "(hardware.cuda.driver_version is the CUDA version the driver supports)")
    return 1


def cmd_ort_cuda(args: list[str]) -> int:
    lib = args[0]
    folder = os.path.dirname(lib)
    has = os.path.exists(os.path.join(folder, "libonnxruntime_providers_cuda.so"))
    print(f"{lib}: {'has' if has else 'has no'} libonnxruntime_providers_cuda.so beside it")
    return 0 if has else 1


DTYPE_NAMES = {"float32": ("f32", "float32", "float"), "float16": ("f16", "float16", "half"),
               "bfloat16": ("bf16", "bfloat16")}


def cmd_embed(args: list[str]) -> int:
    meta = load(args[0])
    want_dev, want_on = args[1], args[2]
    want_dtype = args[3] if len(args) > 3 else None
    dev = meta["device"]["device"]
    clip = meta.get("clip") or {}
    extra = kv(meta["device"].get("backend_extra"))
    runs_on = clip.get("runs_on") or ""
    dtype = extra.get("torch_dtype")
    summ = meta.get("summary") or {}
    print(f"device {dev}, plugin {meta['device'].get('plugin_path')}, engine {clip.get('engine')}, "
          f"runs on {runs_on}, torch dtype {dtype}, onnx providers {meta['device'].get('onnx_providers')}, "
          f"gpu {meta.get('gpu_name')}; {summ.get('images')} images, {summ.get('texts')} texts, "
          f"{summ.get('errors')} errors")
    ok = dev.startswith(want_dev) and runs_on.startswith(want_on)
    if not ok:
        print(f"expected device {want_dev}* with the CLIP towers on {want_on}*")
    if want_dtype and dtype is not None and dtype.lower() not in DTYPE_NAMES[want_dtype]:
        print(f"expected the TorchScript towers in {want_dtype}, the backend says {dtype}")
        ok = False
    # TorchScript on a GPU: the run metadata carries libtorch's allocator figures and TF32 switches.
    memory = meta.get("device_memory")
    print(f"device memory at the end of the run: {memory}; TF32 matmul {extra.get('cuda_tf32_matmul')}, "
          f"cuDNN {extra.get('cuda_tf32_cudnn')}, cuDNN benchmark {extra.get('cudnn_benchmark')}")
    if runs_on.startswith("cuda:"):
        mine = next((d for d in memory or [] if d.get("device") == runs_on), None)
        if not mine or not mine.get("allocated_bytes") or mine.get("reserved_bytes", 0) < mine["allocated_bytes"]:
            print(f"expected allocator figures for {runs_on} in the run metadata's device_memory, got {memory}")
            ok = False
        else:
            print(f"RESULT: run metadata {runs_on} {want_dtype or ''}: allocated "
                  f"{mine['allocated_bytes'] / 2**20:.1f} MiB, reserved {mine['reserved_bytes'] / 2**20:.1f} MiB, "
                  f"peak {(mine.get('peak_bytes') or 0) / 2**20:.1f} MiB")
        tf32 = args[4] if len(args) > 4 else "off"
        want = "true" if tf32 == "on" else "false"
        if (extra.get("cuda_tf32_matmul"), extra.get("cuda_tf32_cudnn")) != (want, want):
            print(f"expected libtorch's TF32 switches {tf32} (SWITCHYARD_CUDA_TF32), the backend says matmul "
                  f"{extra.get('cuda_tf32_matmul')}, cuDNN {extra.get('cuda_tf32_cudnn')}")
            ok = False
    return 0 if ok else 1


def faces_rows(path: str) -> dict:
    rows = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                if r.get("type") == "image":
                    rows[os.path.basename(r["path"])] = r
    return rows


def cos(a, b) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else float("nan")


def cmd_faces(args: list[str]) -> int:
    meta, rows_path, want = load(args[0]), args[1], args[2]
    faces = meta.get("faces") or {}
    det, rec = faces.get("detector_device"), faces.get("recognizer_device")
    rows = faces_rows(rows_path)
    n = sum(len(r.get("faces") or []) for r in rows.values())
    print(f"device {meta['device']['device']}, detector on {det}, recognizer on {rec}; "
          f"{len(rows)} images, {n} faces")
    ok = det == want and rec == want
    if not ok:
        print(f"expected both face models on {want}")
    if n == 0:
        print("no face found in any image (the stand-in detector finds skin-coloured regions in real photos)")
        ok = False
    if len(args) > 3:
        ref = faces_rows(args[3])
        worst, matched = 1.0, 0
        for name, r in sorted(ref.items()):
            a, b = r.get("faces") or [], (rows.get(name) or {}).get("faces") or []
            if len(a) != len(b):
                print(f"{name}: {len(b)} faces here, {len(a)} in the reference")
                ok = False
                continue
            for fa, fb in zip(a, b):
                c = cos(fa["embedding"], fb["embedding"])
                box = max(abs(x - y) for x, y in zip(fa["bbox"], fb["bbox"]))
                worst = min(worst, c)
                matched += 1
                if not (c >= 0.99 and box <= 2.0):
                    print(f"{name}: a face differs from the reference (cosine {c:.5f}, box off by {box:.2f} px)")
                    ok = False
        print(f"against the reference: {matched} faces matched, lowest embedding cosine {worst:.6f}")
    return 0 if ok else 1


def cmd_texts(args: list[str]) -> int:
    out, n = args[0], int(args[1])
    things = ["cat", "dog", "red car", "mountain lake", "birthday cake", "crowd at a concert", "café in Paris",
              "东京的街道", "🐶 puppy", "Ölgemälde eines Hafens", "кошка на окне", "サクラの木", "street food in Bangkok",
              "a diagram of a transformer", "wedding on a beach at sunset", "x-ray of a hand"]
    with open(out, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(f"a photo of a {things[i % len(things)]}, number {i}\n")
    return 0


def cmd_summary(args: list[str]) -> int:
    results, out_json = args[0], args[1]
    info = dict(a.split("=", 1) for a in args[2:])
    checks = []
    with open(results, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 5:
                status, cid, name, secs, note = parts[:5]
                log = parts[5] if len(parts) > 5 else ""
                checks.append({"status": status, "id": cid, "name": name, "seconds": float(secs),
                               "note": note, "log": log})
    findings = []
    extras = []
    for c in checks:
        if c["log"] and os.path.exists(os.path.join(info.get("out", "."), c["log"])):
            for line in open(os.path.join(info["out"], c["log"]), encoding="utf-8", errors="replace"):
                if line.startswith("FINDING:"):
                    findings.append(f"{c['id']}: {line[8:].strip()}")
                elif line.startswith("RESULT:"):
                    extras.append(f"{c['id']}: {line[7:].strip()}")
    counts = {s: sum(1 for c in checks if c["status"] == s) for s in ("PASS", "FAIL", "SKIP")}
    gpu = info.get("gpus", "0") != "0"
    if counts["FAIL"]:
        code, verdict = 1, f"{counts['FAIL']} check(s) FAILED"
    elif not gpu:
        code, verdict = 3, "no NVIDIA GPU here: every check that needs none passed, the GPU checks were skipped"
    else:
        code, verdict = 0, "all checks passed on the GPU"
    summary = {"verdict": verdict, "exit_code": code, "counts": counts, "info": info,
               "checks": checks, "findings": findings, "results": extras}
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=1, ensure_ascii=False)
    print(f"== GPU check summary ({info.get('date', '')}, {info.get('host', '')})")
    for k in ("gpu", "python", "torch", "onnxruntime_python", "onnxruntime_plugins", "bundle"):
        if k in info:
            print(f"{k}: {info[k]}")
    for c in checks:
        tail = f"  ({c['note']})" if c["note"] else ""
        print(f"{c['status']:<5} {c['name']}{tail}  [{c['seconds']:.0f} s]")
    for e in extras:
        print(f"result  {e}")
    for fnd in findings:
        print(f"finding {fnd}")
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped in "
          f"{info.get('wall_s', '?')} s: {verdict} (exit {code})")
    return code


COMMANDS = {
    "gpus": cmd_gpus, "selects": cmd_selects, "refused": cmd_refused, "probe-fields": cmd_probe_fields,
    "driver-release": cmd_driver_release, "ort-cuda": cmd_ort_cuda, "embed": cmd_embed, "faces": cmd_faces,
    "texts": cmd_texts, "summary": cmd_summary,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__)
        sys.exit(2)
    sys.exit(COMMANDS[sys.argv[1]](sys.argv[2:]))
