"""Copy TensorFlow's generated protocol-buffer modules out of the TensorFlow wheel, without the runtime.

`tensorflow-serving-api` ships TF Serving's `*_pb2` modules, but they import TensorFlow's own ones
(`tensorflow.core.framework.tensor_pb2`, `tensorflow.core.protobuf.meta_graph_pb2`, ...), which only the
1 GB+ TensorFlow package provides. The gateway needs those message classes and nothing else, so this script
opens the pinned TensorFlow wheel (a zip file), follows the `*_pb2` imports of the installed
`tensorflow_serving` package transitively, and copies just those modules (and the empty `__init__.py` files
of their packages) into a site-packages directory. `tensorflow/__init__.py` is never copied: in the gateway's
environment `tensorflow` is a bare namespace package with no runtime behind it.

A build step, outside the gateway package so the image never ships it: used by the Makefile
(.venv-gateway) and by gateway/Dockerfile's builder stage. Standard library only.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import zipfile
from pathlib import Path, PurePosixPath

# `from a.b import c_pb2` and `import a.b.c_pb2` lines of generated modules.
_IMPORT = re.compile(
    r"^\s*(?:from\s+(?P<pkg>[\w.]+)\s+import\s+(?P<mod>\w+_pb2)\b|import\s+(?P<full>[\w.]+_pb2)\b)", re.M
)
# Packages whose modules come from the wheel; anything else (google.protobuf, tensorflow_serving) is
# installed by pip already.
_FROM_WHEEL = ("tensorflow.", "tsl.", "xla.")


def _imports(source: str) -> set[str]:
    found = set()
    for match in _IMPORT.finditer(source):
        name = match.group("full") or f"{match.group('pkg')}.{match.group('mod')}"
        found.add(name)
    return found


def _module_path(name: str) -> str:
    return str(PurePosixPath(*name.split("."))) + ".py"


def _seed_sources(package: str) -> list[str]:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{package} is not installed in this environment: pip install --no-deps it first")
    sources: list[str] = []
    for location in spec.submodule_search_locations:
        sources.extend(path.read_text() for path in Path(location).rglob("*_pb2*.py"))
    return sources


def vendor(wheel: Path, dest: Path, seed_packages: tuple[str, ...] = ("tensorflow_serving",)) -> list[str]:
    """Copy the transitive closure of wheel modules that `seed_packages` import; return their paths."""
    copied: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        pending = set().union(*(_imports(src) for pkg in seed_packages for src in _seed_sources(pkg)))
        seen: set[str] = set()
        while pending:
            module = pending.pop()
            if module in seen or not module.startswith(_FROM_WHEEL):
                continue
            seen.add(module)
            path = _module_path(module)
            if path not in names:
                raise SystemExit(f"{module} is imported but not in {wheel.name}: wrong TensorFlow version?")
            source = archive.read(path).decode()
            pending |= _imports(source)
            _write(dest / path, source)
            copied.append(path)
            # Intermediate packages need their (empty) __init__.py, except the top-level `tensorflow`
            # one, which would import the runtime.
            parts = PurePosixPath(path).parent.parts
            for depth in range(2, len(parts) + 1):
                init = str(PurePosixPath(*parts[:depth], "__init__.py"))
                if init in names and not (dest / init).exists():
                    _write(dest / init, archive.read(init).decode())
    return sorted(copied)


def _write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, required=True, help="the pinned tensorflow(-cpu) wheel file")
    parser.add_argument("--dest", type=Path, required=True, help="site-packages directory to copy into")
    args = parser.parse_args(argv)
    copied = vendor(args.wheel, args.dest)
    print(f"vendored {len(copied)} TensorFlow protobuf modules into {args.dest}")  # CLI output
    return 0


if __name__ == "__main__":
    sys.exit(main())
