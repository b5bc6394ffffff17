#!/usr/bin/env python3
"""Compare two `switchyard embed` outputs row by row (cosine similarity).

Used by ci/gpu-check.sh: the same images and texts embedded through the CPU
plugin (the reference; its parity with open_clip is tests/tests/clip_embed.rs)
and through another device/precision. Records are matched by type and path or
text; every record must be in both files, and every cosine must reach --min.

  python tools/compare_embeddings.py cpu.jsonl cuda-fp16.jsonl --min 0.999 --label "cuda float16"

Prints one summary line (rows, min and mean cosine per type) and exits 1 if a
row is missing, failed on one side only, or is below --min.
"""
import argparse
import json
import math
import sys


def load(path: str) -> dict:
    rows = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if r.get("type") not in ("image", "text"):
                continue  # run metadata or other record kinds
            key = (r["type"], r.get("path") if r["type"] == "image" else r.get("text"))
            rows[key] = r
    return rows


def cosine(a: list, b: list) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na > 0 and nb > 0 else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference")
    ap.add_argument("candidate")
    ap.add_argument("--min", type=float, required=True, help="lowest acceptable cosine per row")
    ap.add_argument("--label", default="candidate")
    args = ap.parse_args()

    ref, cand = load(args.reference), load(args.candidate)
    problems = []
    if not ref:
        problems.append(f"{args.reference} has no embeddings")
    for key in sorted(set(ref) | set(cand), key=str):
        if key not in ref or key not in cand:
            problems.append(f"{key[0]} {key[1]!r} is only in {'the reference' if key in ref else args.label}")
    by_type: dict = {}
    for key in sorted(set(ref) & set(cand), key=str):
        a, b = ref[key].get("embedding"), cand[key].get("embedding")
        if a is None and b is None:
            continue  # failed on both sides (e.g. not an image): same behaviour
        if a is None or b is None:
            problems.append(f"{key[0]} {key[1]!r} failed on one side only: "
                            f"{ref[key].get('error') or cand[key].get('error')}")
            continue
        if len(a) != len(b):
            problems.append(f"{key[0]} {key[1]!r}: dimension {len(a)} vs {len(b)}")
            continue
        c = cosine(a, b)
        by_type.setdefault(key[0], []).append(c)
        if not c >= args.min:
            problems.append(f"{key[0]} {key[1]!r}: cosine {c:.6f} < {args.min}")

    parts = [f"{t}s {len(cs)} rows, min {min(cs):.6f}, mean {sum(cs) / len(cs):.6f}" for t, cs in sorted(by_type.items())]
    verdict = "ok" if not problems else "FAILED"
    print(f"{args.label} vs reference (bar {args.min}): {'; '.join(parts) or 'no rows'} -> {verdict}")
    for p in problems[:20]:
        print(f"  {p}", file=sys.stderr)
    if len(problems) > 20:
        print(f"  ... and {len(problems) - 20} more", file=sys.stderr)
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
