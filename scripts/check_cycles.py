#!/usr/bin/env python3
"""Checks that no two files of one folder of src/ import each other in a cycle.

Reads every `.rs` file under src/ and finds the sibling modules each one
imports: `use super::x`, `super::x::…`, `crate::folder::x::…` (with `use`
groups such as `use super::{x::A, y}` taken apart), where `x` is a sibling in
the same folder, a file `x.rs` or a sub-folder `x/` (which stands for every
file under it). A folder's `mod.rs` (and `lib.rs`, for src/) is the folder's
parent module, not a sibling: what it re-exports does not count. Comments, doc
comments and string literals are skipped, and `super` inside an inline module
(`mod tests { use super::*; }`) means that module's parent.

Exits 1, printing each cycle as `src/nets: dense.rs -> mlp.rs -> dense.rs`,
if the sibling modules of any folder below src/ import each other in a cycle.
Also prints, for information only, the cycles between the top-level modules
of src/ (`models -> train -> models`); those do not fail the check.
Usage: check_cycles.py [SRC], SRC being src/ next to this script by default.
Run by .ci/run.
"""

import os
import re
import sys

# At most this many cycles are printed per strongly connected group of modules.
MAX_CYCLES_SHOWN = 12

TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<line_comment>//[^\n]*)
    | (?P<block_comment>/\*)
    | (?P<raw_string>b?r(?P<hashes>\#*)")
    | (?P<string>b?")
    | (?P<char>b?'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]*\}|[^\n]))')
    | (?P<lifetime>'[A-Za-z_][A-Za-z0-9_]*)
    | (?P<ident>(?:r\#)?[A-Za-z_][A-Za-z0-9_]*)
    | (?P<path_sep>::)
    | (?P<punct>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def skip_block_comment(text, i):
    """The index after the block comment opened at text[i - 2:i] (they nest)."""
    depth = 1
    while depth and i < len(text):
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def skip_string(text, i):
    """The index after the string literal whose opening quote ends at i."""
    while i < len(text):
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        else:
            i += 1
    return i


def tokens(text):
    """The identifiers, `::` and punctuation of Rust source, without comments,
    strings or characters."""
    out, i = [], 0
    while i < len(text):
        m = TOKEN.match(text, i)
        kind = m.lastgroup
        if kind == "hashes":  # the inner group of a raw string
            kind = "raw_string"
        i = m.end()
        if kind == "block_comment":
            i = skip_block_comment(text, i)
        elif kind == "raw_string":
            end = text.find('"' + m.group("hashes"), i)
            i = len(text) if end < 0 else end + 1 + len(m.group("hashes"))
        elif kind == "string":
            i = skip_string(text, i)
        elif kind == "ident":
            name = m.group()
            out.append(name[2:] if name.startswith("r#") else name)
        elif kind in ("path_sep", "punct"):
            out.append(m.group())
    return out


def parse_use_tree(toks, i, prefix, paths):
    """Reads the use tree at toks[i] under `prefix`; appends each full path to
    `paths`; returns the index after the tree."""
    path = list(prefix)
    while i < len(toks):
        t = toks[i]
        if t == "{":
            i += 1
            while i < len(toks) and toks[i] != "}":
                i = parse_use_tree(toks, i, path, paths)
                if i < len(toks) and toks[i] == ",":
                    i += 1
            paths.append(path)
            return i + 1
        if t == "*":
            paths.append(path)
            return i + 1
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t):
            path.append(t)
            i += 1
            if i < len(toks) and toks[i] == "::":
                i += 1
                continue
            if i + 1 < len(toks) and toks[i] == "as":
                i += 2
            paths.append(path)
            return i
        # `use ::std::…` or anything unexpected.
        if t == "::":
            i += 1
            continue
        paths.append(path)
        return i
    paths.append(path)
    return i


def referenced_paths(toks, module):
    """Every path (a list of names) the tokens name from `crate`, `super` or
    `self`, made absolute: a list of module names from the crate root."""
    found = []
    stack = []  # inline modules: (depth of their opening brace, name)
    depth = 0
    i = 0
    while i < len(toks):
        t = toks[i]
        here = module + [name for _, name in stack]
        if t == "{":
            depth += 1
        elif t == "}":
            depth -= 1
            if stack and stack[-1][0] == depth:
                stack.pop()
        elif t == "mod" and i + 2 < len(toks) and toks[i + 2] == "{":
            stack.append((depth, toks[i + 1]))
            depth += 1
            i += 3
            continue
        if t == "use":
            paths = []
            i = parse_use_tree(toks, i + 1, [], paths)
            for p in paths:
                absolute = resolve(p, here)
                if absolute is not None:
                    found.append(absolute)
            continue
        if t in ("crate", "super", "self") and i + 1 < len(toks) and toks[i + 1] == "::":
            # A path in an expression, a type or a macro call: `super::x::f()`,
            # `crate::x::Y`, `$crate::x!` (`$`, then `crate`).
            p = [t]
            j = i + 1
            while j + 1 < len(toks) and toks[j] == "::" and re.fullmatch(
                r"[A-Za-z_][A-Za-z0-9_]*", toks[j + 1]
            ):
                p.append(toks[j + 1])
                j += 2
            absolute = resolve(p, here)
            if absolute is not None:
                found.append(absolute)
            i = j
            continue
        i += 1
    return found


def resolve(path, here):
    """`path` from module `here` as a path from the crate root, or None for a
    path that does not start at `crate`, `super` or `self`."""
    if path and path[-1] == "self" and len(path) > 1:  # `use super::x::{self}`
        path = path[:-1]
    if not path:
        return None
    if path[0] == "crate":
        return path[1:]
    if path[0] == "self":
        return here + path[1:]
    if path[0] != "super":
        return None
    base = list(here)
    k = 0
    while k < len(path) and path[k] == "super":
        if not base:
            return None
        base.pop()
        k += 1
    return base + path[k:]


def module_of(rel):
    """The module path of a file, e.g. train/trainer.rs -> ["train", "trainer"]."""
    parts = rel[: -len(".rs")].split("/")
    if parts[-1] == "mod" or parts in (["lib"], ["main"]):
        parts.pop()
    return parts


def simple_cycles(graph, nodes):
    """The elementary cycles of `graph` restricted to `nodes`, each starting at
    its smallest node, at most MAX_CYCLES_SHOWN + 1 of them."""
    cycles = []
    order = sorted(nodes)
    for s in order:
        allowed = {n for n in order if n >= s}
        stack = [(s, iter(sorted(graph.get(s, ()))))]
        path = [s]
        while stack and len(cycles) <= MAX_CYCLES_SHOWN:
            node, rest = stack[-1]
            nxt = next(rest, None)
            if nxt is None:
                stack.pop()
                path.pop()
            elif nxt == s:
                cycles.append(path + [s])
            elif nxt in allowed and nxt not in path:
                path.append(nxt)
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
    return cycles


def strongly_connected(graph, nodes):
    """The strongly connected groups of more than one node (Tarjan)."""
    index, low, on, stack, groups = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return groups


def main():
    if len(sys.argv) > 1:
        root = sys.argv[1]
    else:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
    root = os.path.normpath(root)
    files = {}  # path relative to src/ -> module path
    for folder, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            if name.endswith(".rs"):
                rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
                if not rel.startswith("bin/"):  # each a crate of its own
                    files[rel] = module_of(rel)

    # Each folder's sibling modules: its files (less mod.rs) and sub-folders.
    folders = {}
    for rel, module in files.items():
        parts = rel.split("/")
        for depth in range(len(parts)):
            folder = tuple(parts[:depth])
            folders.setdefault(folder, set())
            if depth < len(module):
                folders[folder].add(module[depth])

    def node_name(folder, name):
        path = "/".join(folder + (name,))
        return name + ".rs" if path + ".rs" in files else name + "/"

    # edges[folder][a] = the siblings a imports, a and each sibling named as
    # in the folder.
    edges = {folder: {} for folder in folders}
    for rel, module in sorted(files.items()):
        with open(os.path.join(root, rel), encoding="utf-8") as f:
            text = f.read()
        for target in referenced_paths(tokens(text), module):
            for folder, siblings in folders.items():
                n = len(folder)
                if len(module) <= n or tuple(module[:n]) != folder:
                    continue  # not below this folder, or its mod.rs
                if len(target) <= n or tuple(target[:n]) != folder:
                    continue
                a, b = module[n], target[n]
                if b in siblings and b != a:
                    edges[folder].setdefault(a, set()).add(b)

    failed = False
    for folder in sorted(f for f in folders if f):
        graph = edges[folder]
        where = "src/" + "/".join(folder)
        for group in strongly_connected(graph, folders[folder]):
            failed = True
            cycles = simple_cycles(graph, group)
            for cycle in cycles[:MAX_CYCLES_SHOWN]:
                print(f"{where}: " + " -> ".join(node_name(folder, m) for m in cycle))
            if len(cycles) > MAX_CYCLES_SHOWN:
                members = ", ".join(node_name(folder, m) for m in group)
                print(f"{where}: ... and more cycles among {members}")
    if failed:
        print("check_cycles: files of one folder import each other in a cycle (above)")
    else:
        print("check_cycles: no cycles between the files of any folder of src/")

    top = edges[()]
    groups = strongly_connected(top, folders[()])
    if groups:
        print("for information, cycles between the top-level modules of src/:")
        for group in groups:
            cycles = simple_cycles(top, group)
            for cycle in cycles[:MAX_CYCLES_SHOWN]:
                print("  " + " -> ".join(cycle))
            if len(cycles) > MAX_CYCLES_SHOWN:
                print(f"  ... and more cycles among {', '.join(group)}")
    else:
        print("for information: no cycles between the top-level modules of src/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
