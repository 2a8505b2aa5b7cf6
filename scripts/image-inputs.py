#!/usr/bin/env python3
"""Content hash of everything one image is built from, so an unchanged image is not built again.

    python3 scripts/image-inputs.py DOCKERFILE [--build-arg K=V ...]

Hashes the Dockerfile's text, the build arguments, the image id of each base it starts
``FROM`` (so a rebuilt base rebuilds what stands on it) and every file it reads from the build
context: the sources of ``COPY`` (not ``--from``) and of ``RUN --mount=type=bind,source=...``,
minus what ``.dockerignore`` leaves out. Files under ``build/`` (wheels, whose names carry their
versions and never change in place) count by name and size; the others by content. Prints a
16-hex-digit hash; ``scripts/docker.sh`` stores it as the image label ``org.mediafleet.inputs``
and skips a build whose label already matches (``REBUILD=1`` builds anyway).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def ignore_patterns() -> list[str]:
    path = ROOT / ".dockerignore"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as Docker matches it (Go's filepath.Match plus ``**``): ``*`` and
    ``?`` stop at ``/``, ``**`` crosses directories."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def ignored(rel: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``rel`` out of the build context: the last pattern that matches it
    or a folder above it decides, ``!pattern`` bringing it back (Docker's .dockerignore rules)."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for raw in patterns:
        negated = raw.startswith("!")
        regex = pattern_regex(raw.lstrip("!").strip("/"))
        if any(regex.fullmatch(p) for p in prefixes):
            result = not negated
    return result


def files_under(rel: str, patterns: list[str]) -> list[Path]:
    base = ROOT / rel
    if base.is_file():
        return [base]
    if not base.is_dir():
        return []
    out = []
    for path in sorted(base.rglob("*")):
        r = path.relative_to(ROOT).as_posix()
        if path.is_file() and not path.is_symlink() and not ignored(r, patterns):
            out.append(path)
    return out


def sources(text: str) -> list[str]:
    found = set(re.findall(r"source=([^,\s\\]+)", text))
    for line in re.findall(r"^\s*COPY\s+(.*)$", text, re.M):
        if "--from=" in line:
            continue
        words = [w for w in line.split() if not w.startswith("--")]
        found.update(words[:-1])
    return sorted(s.rstrip("/") for s in found)


def base_images(text: str, args: dict[str, str]) -> list[str]:
    """The images the Dockerfile starts FROM (build stages excluded), ARGs resolved."""
    defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    values = {**defaults, **args}
    stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I))
    out = []
    for name in re.findall(r"^FROM\s+(\S+)", text, re.M):
        name = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values.get(m.group(1) or m.group(2), ""), name)
        if name not in stages:
            out.append(name)
    return out


def image_id(name: str) -> str:
    out = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Id}}", name], capture_output=True, text=True
    )
    return out.stdout.strip() or f"absent:{name}"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    dockerfile, rest = argv[0], argv[1:]
    args: dict[str, str] = {}
    for i, word in enumerate(rest):
        if word == "--build-arg" and i + 1 < len(rest):
            key, _, value = rest[i + 1].partition("=")
            args[key] = value
    text = (ROOT / dockerfile).read_text()
    digest = hashlib.sha256()
    digest.update(text.encode())
    for key in sorted(args):
        digest.update(f"arg {key}={args[key]}\n".encode())
    for base in base_images(text, args):
        digest.update(f"from {base} {image_id(base)}\n".encode())
    patterns = ignore_patterns()
    for src in sources(text):
        for path in files_under(src, patterns):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("build/"):
                digest.update(f"{rel} {path.stat().st_size}\n".encode())
            else:
                digest.update(f"{rel} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    print(digest.hexdigest()[:16])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
