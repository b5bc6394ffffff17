#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with Prometheus's own Python
parser (prometheus_client.parser.text_string_to_metric_families) and prints
what it read as JSON: one object per family, with its type and samples
(name, labels, value). A text the parser refuses ends with exit status 1 and
the parser's message, so a format bug in `GET /metrics` fails loudly.

Usage (tests/tests/metrics_prometheus.rs runs it):
  curl -s -H "Authorization: Bearer $KEY" localhost:3003/metrics | .venv/bin/python tools/parse_metrics.py
"""
from __future__ import annotations

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    text = sys.stdin.read()
    try:
        families = [
            {
                "name": f.name,
                "type": f.type,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)}
                    for s in f.samples
                ],
            }
            for f in text_string_to_metric_families(text)
        ]
    except Exception as e:  # the parser raises ValueError and others, all of them a refusal
        print(f"prometheus_client refused the exposition: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    json.dump(families, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
