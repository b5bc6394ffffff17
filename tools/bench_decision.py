#!/usr/bin/env python3
"""Benchmark: how long does it take to decide which device to use?

Compares, in one run on the same machine:
  switchyard   `switchyard probe --no-inspect --json`: the host's driver probe,
               plugin discovery and the selection policy. Reported twice: the
               in-process decision time it measures itself, and the wall time
               of the whole process (exec, argument parsing, JSON output).
  python       `import torch; torch.cuda.is_available()` (plus the MPS check),
               which is how the Python service decides, as a whole process.

Prints medians over --runs runs and the ratio. Not a test: nothing is
asserted; the figures go into the README.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PY_DECIDE = (
    "import torch\n"
    "d = 'cuda' if torch.cuda.is_available() else "
    "('mps' if torch.backends.mps.is_available() else 'cpu')\n"
    "print(d)\n"
)


def wall(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return (time.perf_counter() - start) * 1e3, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--python-runs", type=int, default=5)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/switchyard"))
    ap.add_argument("--json", action="store_true", help="also print one JSON line (for tools/bench.py)")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("DEVICE", "FORCE_CPU")}

    decision, ours_wall, selected = [], [], None
    for _ in range(args.runs):
        ms, out = wall([args.bin, "probe", "--no-inspect", "--json"], env)
        report = json.loads(out)
        decision.append(report["decision_ms"])
        ours_wall.append(ms)
        selected = report["selection"]["kind"] if report["selection"] else report["error"]
    py_wall, py_selected = [], None
    for _ in range(args.python_runs):
        ms, out = wall([sys.executable, "-c", PY_DECIDE], env)
        py_wall.append(ms)
        py_selected = out.strip()

    d, w, p = statistics.median(decision), statistics.median(ours_wall), statistics.median(py_wall)
    print(f"device decision, median of {args.runs} (switchyard) / {args.python_runs} (python) runs")
    print(f"{'what':<44}{'median ms':>12}{'python / this':>16}")
    print(f"{'switchyard decision (in process)':<44}{d:>12.3f}{p / d:>15.0f}x")
    print(f"{'switchyard probe --no-inspect (whole process)':<44}{w:>12.1f}{p / w:>15.0f}x")
    print(f"{'python: import torch + is_available':<44}{p:>12.1f}{1:>15.0f}x")
    print(f"selected: switchyard={selected} python={py_selected}")
    if args.json:
        print(json.dumps({"switchyard_decision_ms": d, "switchyard_process_ms": w, "python_ms": p,
                          "selected": selected, "python_selected": py_selected}))


if __name__ == "__main__":
    main()
