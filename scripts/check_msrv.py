#!/usr/bin/env python3
"""Checks that vaekit's `rust-version` is at least every locked dependency's.

Reads `cargo metadata --locked` (normal and build dependencies, all features,
every platform) and compares each package's declared `rust-version` with the
one in Cargo.toml. Exits 1, naming the packages that need a newer Rust, if
vaekit's is lower. Run by .ci/run.
"""

import json
import subprocess
import sys


def version(v):
    return tuple(int(x) for x in v.split("."))


meta = json.loads(
    subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--all-features"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
)
packages = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = next(p["id"] for p in meta["packages"] if p["name"] == "vaekit")
ours = version(packages[root]["rust_version"])

seen, stack = set(), [root]
while stack:
    node = stack.pop()
    if node in seen:
        continue
    seen.add(node)
    for dep in nodes[node]["deps"]:
        if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
            stack.append(dep["pkg"])

needs = sorted(
    (version(packages[i]["rust_version"]), packages[i]["name"], packages[i]["version"])
    for i in seen
    if i != root and packages[i].get("rust_version")
)
highest = needs[-1][0]
too_new = [f"{n} {v} needs {'.'.join(map(str, r))}" for r, n, v in needs if r > ours]
print(
    f"rust-version {'.'.join(map(str, ours))}; the locked dependencies need at most "
    f"{'.'.join(map(str, highest))} ({needs[-1][1]} {needs[-1][2]})"
)
if too_new:
    print("rust-version is too low:", "; ".join(too_new), file=sys.stderr)
    sys.exit(1)
