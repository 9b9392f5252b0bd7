"""Dockerfiles and their build-context filters read the way Docker reads them, for tests of image inputs.

    from tests.support.dockerfiles import BuildContext, copied_files, instructions

    instructions(REPO / "gateway" / "Dockerfile")          # [("FROM", "..."), ("COPY", "..."), ...]
    context = BuildContext.read(REPO / "gateway" / "Dockerfile.dockerignore")
    context.admits("gateway/app.py")                         # True: sent to the daemon

`BuildContext` follows Docker's rules for a .dockerignore: patterns are cleaned paths relative to the
context, `*` and `?` stay within one path segment, `**` spans any number of them, a path is excluded when it
or one of its parent folders matches, `!pattern` takes a path back in, and the last matching line wins.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def copy_sources(dockerfile: Path) -> list[str]:
    """The context paths (or globs) of every COPY/ADD that reads the build context (not `--from=` a stage)."""
    sources = []
    for keyword, arguments in instructions(dockerfile):
        if keyword not in ("COPY", "ADD"):
            continue
        words = arguments.split()
        if any(word.startswith("--from") for word in words):
            continue
        *named, _destination = [word for word in words if not word.startswith("--")]
        sources.extend(named)
    return sources


def copied_files(dockerfile: Path, context: Path = REPO) -> Iterator[str]:
    """Every file, relative to `context`, that the Dockerfile's COPY/ADD sources name (folders walked)."""
    for source in copy_sources(dockerfile):
        matches = sorted(context.glob(source.rstrip("/")))
        if not matches:
            raise FileNotFoundError(f"{dockerfile}: COPY source {source} matches nothing in {context}")
        for match in matches:
            paths = sorted(p for p in match.rglob("*") if p.is_file()) if match.is_dir() else [match]
            for path in paths:
                if "__pycache__" not in path.parts:
                    yield path.relative_to(context).as_posix()


def _regex(pattern: str) -> re.Pattern[str]:
    parts = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" also matches no folder at all
                i += 1
                parts.append("(?:.*/)?")
            else:
                parts.append(".*")
            continue
        parts.append({"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char)))
        i += 1
    return re.compile("".join(parts))


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    exception: bool


@dataclass(frozen=True)
class BuildContext:
    """The filter one .dockerignore file applies to a build context."""

    rules: tuple[_Rule, ...]

    @classmethod
    def read(cls, ignore_file: Path) -> BuildContext:
        return cls.parse(ignore_file.read_text(encoding="utf-8"))

    @classmethod
    def parse(cls, text: str) -> BuildContext:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exception = line.startswith("!")
            pattern = posixpath.normpath(line.removeprefix("!").strip()).lstrip("/")
            rules.append(_Rule(_regex(pattern), exception))
        return cls(tuple(rules))

    def admits(self, path: str) -> bool:
        """True when `path` (relative to the context, / separated) is sent to the daemon."""
        folders = path.split("/")[:-1]
        candidates = [path] + ["/".join(folders[: i + 1]) for i in range(len(folders))]
        excluded = False
        for rule in self.rules:
            if any(rule.regex.fullmatch(candidate) for candidate in candidates):
                excluded = not rule.exception
        return not excluded
