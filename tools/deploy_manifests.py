#!/usr/bin/env python3
"""Extracts every Kubernetes manifest of a Markdown file (each ```yaml
block, every `---` document in it) and validates each with
kubernetes-validate in strict mode (unknown fields are errors) for the
given Kubernetes versions, offline (the schemas ship with the package).

Prints one JSON object: the validator's version and, per document, its
block (1-based), the line the block starts on, the document itself, and per
Kubernetes version "ok", "no schema" (a custom resource such as a
ServiceMonitor) or the validation error. A block that is not YAML gives one
entry with "yaml_error". The caller (tests/tests/deploy_manifests.rs) makes
the assertions and the checks a schema cannot.

Usage:
  .venv/bin/python tools/deploy_manifests.py docs/deploy.md 1.33 1.37
"""
from __future__ import annotations

import json
import re
import sys

import kubernetes_validate
import yaml

FENCE = re.compile(r"^```\s*(\S*)\s*$")


def yaml_blocks(text: str) -> list:
    """(first line number, source) of each ```yaml / ```yml block."""
    blocks, current, start = [], None, 0
    for number, line in enumerate(text.splitlines(), 1):
        m = FENCE.match(line)
        if current is None:
            if m and m.group(1).lower() in ("yaml", "yml"):
                current, start = [], number
        elif m and m.group(1) == "":
            blocks.append((start, "\n".join(current)))
            current = None
        else:
            current.append(line)
    if current is not None:
        raise SystemExit(f"the ```yaml block at line {start} is never closed")
    return blocks


def check(doc: dict, version: str) -> str:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return "ok"
    except kubernetes_validate.SchemaNotFoundError:
        return "no schema"
    except kubernetes_validate.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        return f"{where}: {e.message}"


def main(path: str, versions: list) -> None:
    with open(path, encoding="utf-8") as f:
        blocks = yaml_blocks(f.read())
    documents = []
    for index, (line, source) in enumerate(blocks, 1):
        try:
            docs = [d for d in yaml.safe_load_all(source) if d is not None]
        except yaml.YAMLError as e:
            documents.append({"block": index, "line": line, "yaml_error": str(e)})
            continue
        for doc in docs:
            entry = {"block": index, "line": line, "doc": doc}
            if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                entry["yaml_error"] = "not a Kubernetes object (no apiVersion and kind)"
            else:
                entry["schemas"] = {v: check(doc, v) for v in versions}
            documents.append(entry)
    json.dump({"validator": f"kubernetes-validate {kubernetes_validate.__version__}", "documents": documents},
              sys.stdout, indent=1)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2:])
