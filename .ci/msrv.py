#!/usr/bin/env python3
"""Checks the declared MSRV: every workspace crate declares the workspace's
rust-version, and no locked dependency needs a newer Rust than it. (Clippy's
incompatible_msrv lint checks our own code against the same number.)"""
import json
import subprocess
import sys


def version(v):
    return tuple(int(x) for x in v.split(".")) + (0,) * (3 - len(v.split(".")))


meta = json.loads(
    subprocess.check_output(["cargo", "metadata", "--format-version", "1", "--locked"])
)
members = set(meta["workspace_members"])
ours = [p for p in meta["packages"] if p["id"] in members]
declared = {p["name"]: p.get("rust_version") for p in ours}
if None in declared.values() or len(set(declared.values())) != 1:
    sys.exit(f"every workspace crate must declare one rust-version: {declared}")
msrv = next(iter(declared.values()))
needs = [
    (version(p["rust_version"]), p["name"], p["version"], p["rust_version"])
    for p in meta["packages"]
    if p["id"] not in members and p.get("rust_version")
]
over = [n for n in needs if n[0] > version(msrv)]
if over:
    for _, name, ver, rv in sorted(over):
        print(f"{name} {ver} needs Rust {rv}", file=sys.stderr)
    sys.exit(f"declared rust-version {msrv} is older than what the locked dependencies need")
newest = max(needs)
print(f"MSRV {msrv}: every crate declares it; the newest dependency need is "
      f"{newest[1]} {newest[2]} (Rust {newest[3]})")
