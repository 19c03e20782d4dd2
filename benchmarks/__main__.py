"""python -m benchmarks --list | python -m benchmarks NAME [options]"""
from __future__ import annotations

import importlib
import pkgutil
import sys

from .harness import REGISTRY


def _load_all() -> None:
    import benchmarks

    for mod in pkgutil.iter_modules(benchmarks.__path__):
        if mod.name.startswith("bench_"):
            importlib.import_module(f"benchmarks.{mod.name}")


def main(argv: list[str]) -> int:
    _load_all()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("benchmarks:", ", ".join(sorted(REGISTRY)))
        return 0
    if argv[0] == "--list":
        for name, (_, help) in sorted(REGISTRY.items()):
            print(f"{name:28s} {help}")
        return 0
    name = argv[0]
    if name not in REGISTRY:
        print(f"unknown benchmark {name!r}; `python -m benchmarks --list` names them: {', '.join(sorted(REGISTRY))}",
              file=sys.stderr)
        return 2
    fn, _ = REGISTRY[name]
    fn(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
