#!/usr/bin/env python3
"""The workspace's crate graph and the host's module graph, checked.

Builds two graphs and prints them (the text in docs/architecture.md,
"Crate and module graphs", is this script's output):

- the crate graph, from `cargo metadata`: each workspace crate and the
  workspace crates it depends on (normal and build dependencies; dev
  dependencies are tests, left out);
- the module graph of the host crate, from the source: an edge `a -> b` when
  module `a` names module `b` in a `use` line or in a path written in the code
  (`crate::x::y`, `super::x`, a child module `x::f()`), re-exports followed to
  the module that defines the item. A file is one module; inline modules
  (`mod tests { .. }`) belong to their file.

Then it checks both against the layers in a config file (tools/layers.toml
by default; its header says how layers are written) and exits 1 when

- the module graph has a cycle (two modules that reach each other), or
- a module or crate imports upward: names one of a higher layer, or a
  sibling in a scope marked `independent`, or
- a module or crate is in no layer (a new one must say where it belongs).

Usage: python3 tools/module_graph.py [--check] [--root DIR] [--src DIR]
[--layers FILE] [--no-crates]. `--check` prints only the problems (ci/test.sh
runs it); without it the graphs are printed too. `--src`, `--layers` and
`--no-crates` let a test run it on a synthetic tree.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- source text


def strip_comments_and_strings(text: str) -> str:
    """The code with comments, string and char literals blanked (newlines kept)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append("\n" * text.count("\n", i, j))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            end = n if end < 0 else end + 1 + len(hashes)
            out.append('""' + "\n" * text.count("\n", i, end))
            i = end
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{..}'), not a lifetime ('a).
            m = re.match(r"'(\\.[^']*|[^'\\])'", text[i:])
            if m:
                out.append("' '")
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand_use_tree(tree: str) -> list[str]:
    """`a::{b, c::{d, e as f}, self}` -> ["a::b", "a::c::d", "a::c::e", "a"]."""
    tree = re.sub(r"\s+as\s+[A-Za-z_][A-Za-z0-9_]*", "", tree)
    tree = re.sub(r"\s+", "", tree)
    out: list[str] = []

    def walk(prefix: str, s: str) -> None:
        # s is one use tree, e.g. `a::{b,c}` or `a::b as c` or `*`.
        brace = s.find("{")
        if brace < 0:
            path = s if not prefix else (prefix if s == "self" else f"{prefix}::{s}")
            out.append(path)
            return
        head = s[:brace].rstrip(":")
        inner = s[brace + 1:s.rfind("}")]
        new_prefix = head if not prefix else (f"{prefix}::{head}" if head else prefix)
        for part in split_top(inner):
            if part:
                walk(new_prefix, part)

    walk("", tree)
    return out


def split_top(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for c in s:
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


# ---------------------------------------------------------------- modules


@dataclass
class Module:
    path: str  # e.g. "server::state"; "" is the crate root
    file: Path
    children: list[str] = field(default_factory=list)
    uses: list[tuple[str, int]] = field(default_factory=list)  # (absolute-or-relative path text, line)
    code_paths: list[tuple[str, int]] = field(default_factory=list)
    reexports: dict[str, str] = field(default_factory=dict)  # name -> full use path


MOD_DECL = re.compile(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;", re.M)
USE_STMT = re.compile(r"\b(pub(?:\([^)]*\))?\s+)?use\s+([^;]+);")
CODE_PATH = re.compile(r"(?<![A-Za-z0-9_:])((?:crate|super|self|[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)+)")


def module_file(dir_: Path, name: str) -> Path | None:
    for p in (dir_ / f"{name}.rs", dir_ / name / "mod.rs"):
        if p.exists():
            return p
    return None


def load_crate(src_root: Path, root_file: str) -> dict[str, Module]:
    """Every file module reachable from `root_file` through `mod x;`."""
    modules: dict[str, Module] = {}

    def visit(path: str, file: Path, child_dir: Path) -> None:
        text = strip_comments_and_strings(file.read_text())
        m = Module(path, file)
        modules[path] = m
        for decl in MOD_DECL.finditer(text):
            name = decl.group(1)
            f = module_file(child_dir, name)
            if f is None:
                continue
            child = f"{path}::{name}" if path else name
            m.children.append(child)
            visit(child, f, f.parent if f.name == "mod.rs" else f.parent / name)
        # Inline modules shift `super` by one level: record the depth of each use.
        for use in USE_STMT.finditer(text):
            line = text.count("\n", 0, use.start()) + 1
            depth = inline_depth(text, use.start())
            for p in expand_use_tree(use.group(2)):
                p = drop_supers(p, depth)
                if p is None:
                    continue
                m.uses.append((p, line))
                if use.group(1) and not p.endswith("*"):
                    m.reexports[p.rsplit("::", 1)[-1]] = p
        body = USE_STMT.sub(lambda u: "\n" * u.group(0).count("\n"), text)
        for cp in CODE_PATH.finditer(body):
            line = body.count("\n", 0, cp.start()) + 1
            p = drop_supers(cp.group(1), inline_depth(body, cp.start()))
            if p is not None:
                m.code_paths.append((p, line))

    root = src_root / root_file
    visit("", root, root.parent)
    return modules


INLINE_MOD = re.compile(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{")


def inline_depth(text: str, pos: int) -> int:
    """How many inline `mod x { .. }` blocks enclose `pos`."""
    depth = 0
    for m in INLINE_MOD.finditer(text, 0, pos):
        # Find the block's end by brace matching.
        i, level = m.end(), 1
        while i < len(text) and level:
            if text[i] == "{":
                level += 1
            elif text[i] == "}":
                level -= 1
            i += 1
        if i > pos:
            depth += 1
    return depth


def drop_supers(p: str, depth: int) -> str | None:
    """In an inline module `depth` deep, the first `depth` supers stay in the file."""
    parts = p.split("::")
    for _ in range(depth):
        if parts and parts[0] == "super":
            parts[0] = "self"
            if len(parts) > 1 and parts[1] == "super":
                parts.pop(0)
        else:
            break
    return "::".join(parts)


def resolve(modules: dict[str, Module], here: str, path: str, externs: set[str], seen: int = 0) -> str | None:
    """The module `path` (written in module `here`) lands in, or None (another crate, std)."""
    parts = path.split("::")
    base: list[str]
    head = parts[0]
    cur = here.split("::") if here else []
    if head == "crate":
        base, rest = [], parts[1:]
    elif head in externs:
        return None
    elif head == "self":
        base, rest = cur, parts[1:]
    elif head == "super":
        base = cur
        rest = parts
        while rest and rest[0] == "super":
            base = base[:-1]
            rest = rest[1:]
    else:
        child = "::".join(cur + [head])
        if child in modules:
            base, rest = cur, parts
        else:
            return None
    # Longest prefix that is a module.
    mod = "::".join(base)
    i = 0
    while i < len(rest):
        nxt = f"{mod}::{rest[i]}" if mod else rest[i]
        if nxt not in modules:
            break
        mod, i = nxt, i + 1
    if mod not in modules:
        return None
    # An item re-exported by `mod`: follow it to where it is defined.
    if i < len(rest) and rest[i] in modules[mod].reexports and seen < 8:
        target = resolve(modules, mod, modules[mod].reexports[rest[i]], externs, seen + 1)
        if target is not None:
            return target
    return mod


def module_edges(modules: dict[str, Module], externs: set[str]) -> dict[str, dict[str, int]]:
    """`a -> {b: first line in a naming b}`, self-edges dropped."""
    edges: dict[str, dict[str, int]] = {m: {} for m in modules}
    for name, m in modules.items():
        for p, line in m.uses + m.code_paths:
            target = resolve(modules, name, p.removesuffix("::*"), externs)
            if target is None or target == name:
                continue
            edges[name].setdefault(target, line)
    return edges


def find_cycles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


# ---------------------------------------------------------------- layers


@dataclass
class Scope:
    """The layers of the children of one module (or of the crate root)."""

    layer_of: dict[str, int]
    independent: bool


def read_scopes(table: dict) -> dict[str, Scope]:
    scopes = {}
    for name, spec in table.items():
        scope = "" if name == "crate" else name
        layer_of = {}
        for i, layer in enumerate(spec.get("layers", [])):
            for child in layer:
                layer_of[child] = i
        scopes[scope] = Scope(layer_of, bool(spec.get("independent", False)))
    return scopes


def where(file: Path, line: int) -> str:
    try:
        file = file.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return f"{file}:{line}"


def layer_problems(modules: dict[str, Module], edges: dict[str, dict[str, int]], scopes: dict[str, Scope]) -> list[str]:
    problems = []
    for scope, spec in scopes.items():
        if scope and scope not in modules:
            problems.append(f"the layers name `{scope}`, which is not a module")
            continue
        for child in modules.get(scope, Module(scope, Path())).children:
            leaf = child.rsplit("::", 1)[-1]
            if not spec.independent and leaf not in spec.layer_of:
                problems.append(f"module `{child}` is in no layer: add it to the layers of `{scope or 'crate'}`")
    for a, targets in edges.items():
        pa = a.split("::") if a else []
        for b, line in targets.items():
            pb = b.split("::") if b else []
            k = 0
            while k < min(len(pa), len(pb)) and pa[k] == pb[k]:
                k += 1
            if k == len(pa) or k == len(pb):
                continue  # an ancestor or a descendant: containment, not layering
            scope = "::".join(pa[:k])
            spec = scopes.get(scope)
            if spec is None:
                continue
            if spec.independent:
                problems.append(f"{where(modules[a].file, line)}: `{a}` uses its sibling `{b}`; the modules of `{scope}` are independent (move the shared part down)")
                continue
            la, lb = spec.layer_of.get(pa[k]), spec.layer_of.get(pb[k])
            if la is not None and lb is not None and lb > la:
                problems.append(f"{where(modules[a].file, line)}: `{a}` (layer {la} of `{scope or 'crate'}`) uses `{b}` (layer {lb}): an upward import")
    return problems


# ---------------------------------------------------------------- crates


def crate_graph(root: Path) -> dict[str, list[str]]:
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=root, check=True, capture_output=True, text=True).stdout)
    names = {p["name"] for p in meta["packages"]}
    graph = {}
    for p in meta["packages"]:
        deps = sorted({d["name"] for d in p["dependencies"] if d["name"] in names and d.get("kind") != "dev"})
        graph[p["name"]] = deps
    return graph


def crate_problems(graph: dict[str, list[str]], layers: list[list[str]]) -> list[str]:
    layer_of = {}
    for i, layer in enumerate(layers):
        for pattern in layer:
            layer_of[pattern] = i

    def layer(name: str) -> int | None:
        best = None
        for pattern, i in layer_of.items():
            if pattern == name or (pattern.endswith("*") and name.startswith(pattern[:-1])):
                if best is None or len(pattern) > len(best[0]):
                    best = (pattern, i)
        return None if best is None else best[1]

    problems = []
    for name, deps in graph.items():
        la = layer(name)
        if la is None:
            problems.append(f"crate `{name}` is in no layer: add it to [crates] in the layers file")
            continue
        for d in deps:
            lb = layer(d)
            if lb is not None and lb >= la:
                problems.append(f"crate `{name}` (layer {la}) depends on `{d}` (layer {lb}): crates depend only on lower layers")
    return problems


# ---------------------------------------------------------------- printing


def print_crates(graph: dict[str, list[str]], layers: list[list[str]]) -> None:
    print("Crate graph (cargo metadata; normal and build dependencies), top layer first:")
    placed = set()
    for i in reversed(range(len(layers))):
        members = sorted(n for n in graph if n not in placed and any(
            p == n or (p.endswith("*") and n.startswith(p[:-1])) for p in layers[i]))
        placed.update(members)
        print(f"  layer {i}:")
        for n in members:
            print(f"    {n} -> {', '.join(graph[n]) or '(nothing of the workspace)'}")


def print_modules(crate: str, modules: dict[str, Module], edges: dict[str, dict[str, int]], scopes: dict[str, Scope]) -> None:
    print(f"Module graph of `{crate}` (use lines and paths; `a -> b`: a names b), by scope, top layer first:")
    for scope, spec in sorted(scopes.items()):
        if scope and scope not in modules:
            continue
        print(f"  {scope or 'crate'}{' (independent modules)' if spec.independent else ''}:")
        children = modules[scope].children
        if spec.independent:
            groups = [sorted(children)]
        else:
            top = max(spec.layer_of.values(), default=-1)
            groups = [sorted(c for c in children if spec.layer_of.get(c.rsplit("::", 1)[-1]) == i) for i in range(top, -1, -1)]
        for i, group in enumerate(groups):
            label = "" if spec.independent else f"layer {len(groups) - 1 - i}: "
            for c in group:
                # Dependencies outside the module's own subtree, collapsed to the scope's children.
                deps = set()
                for m in modules:
                    if m == c or m.startswith(c + "::"):
                        for t in edges[m]:
                            if not (t == c or t.startswith(c + "::")):
                                deps.add(collapse(t, scope, scopes))
                deps.discard(None)
                print(f"    {label}{c.rsplit('::', 1)[-1]} -> {', '.join(sorted(deps)) or '-'}")


def collapse(target: str, scope: str, scopes: dict[str, Scope]) -> str:
    """A dependency shown relative to `scope`: a sibling by its name, else its path."""
    prefix = scope + "::" if scope else ""
    if target.startswith(prefix):
        rest = target[len(prefix):].split("::")[0]
        return rest
    return f"crate::{target}" if target else "crate"


# ---------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="the workspace (for cargo metadata)")
    ap.add_argument("--src", type=Path, default=None, help="the crate's src folder (default: ROOT/host/src)")
    ap.add_argument("--layers", type=Path, default=None, help="the layers file (default: ROOT/tools/layers.toml)")
    ap.add_argument("--no-crates", action="store_true", help="skip the crate graph")
    ap.add_argument("--check", action="store_true", help="print only the problems")
    args = ap.parse_args()
    src = args.src or args.root / "host" / "src"
    layers_file = args.layers or args.root / "tools" / "layers.toml"
    config = tomllib.loads(layers_file.read_text())
    problems: list[str] = []

    if not args.no_crates:
        graph = crate_graph(args.root)
        crate_layers = config.get("crates", {}).get("layers", [])
        problems += crate_problems(graph, crate_layers)
        if not args.check:
            print_crates(graph, crate_layers)
            print()

    host = config.get("modules", {})
    externs = set(host.get("externs", []))
    for root_file in host.get("roots", ["lib.rs"]):
        modules = load_crate(src, root_file)
        edges = module_edges(modules, externs)
        scopes = read_scopes(host.get("scopes", {}).get(root_file.removesuffix(".rs"), {}))
        for cycle in find_cycles(edges):
            detail = "; ".join(f"{a} -> {b} ({modules[a].file.name}:{edges[a][b]})"
                               for a in cycle for b in cycle if b in edges[a])
            problems.append(f"module cycle in {root_file}: {', '.join(cycle)}: {detail}")
        problems += layer_problems(modules, edges, scopes)
        if not args.check:
            print_modules(root_file, modules, edges, scopes)
            print()

    for p in problems:
        print(f"error: {p}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s); the layers are in {layers_file}", file=sys.stderr)
        return 1
    if not args.check:
        print("no module cycle, no upward import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
