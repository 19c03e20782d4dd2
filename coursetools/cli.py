"""Command line of the teaching tools (``python -m coursetools``, called by ./course)."""
from __future__ import annotations

import argparse
import pathlib
import sys
import time

from . import BUILD_DIR, ROOT, lesson_paths


def _pick_lessons(names: list[str]) -> list[pathlib.Path]:
    lessons = lesson_paths()
    if not names:
        return lessons
    chosen = [p for p in lessons if any(p.name.startswith(n) or p.stem == n for n in names)]
    unknown = [n for n in names if not any(p.name.startswith(n) or p.stem == n for p in lessons)]
    if unknown:
        raise SystemExit(f"course: no lesson matches {unknown}; the lessons are {[p.stem for p in lessons]}.")
    return chosen


def _executed(args, log) -> list[pathlib.Path]:
    from .execute import executed_lessons

    lessons = _pick_lessons(args.lessons)
    if args.no_execute:
        log("not executing the lessons (--no-execute): code cells will have no outputs")
        return lessons
    log(f"executing {len(lessons)} lesson(s) into {args.cache} (reused while unchanged)")
    return executed_lessons(lessons, args.cache, fast=args.fast, force=args.force, log=log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursetools", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("assets", help="fetch the pinned reveal.js and MathJax (once) for offline slides and site")
    p.add_argument("--quiet", action="store_true")
    p = sub.add_parser("student", help="write the student edition: every lesson without its solution cells")
    p.add_argument("--out", type=pathlib.Path, default=BUILD_DIR / "student")
    p.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    for name, what in (("slides", "reveal.js slides"), ("site", "the static course site (Sphinx + MyST-NB)")):
        p = sub.add_parser(name, help=f"execute the lessons and build {what}; opens offline")
        p.add_argument("--out", type=pathlib.Path, default=BUILD_DIR / name)
        p.add_argument("--fast", action="store_true", help="execute in fast mode (FLOWS_FAST=1): quick, rougher")
        p.add_argument("--no-execute", action="store_true", help="use the lessons as stored (no outputs)")
        p.add_argument("--force", action="store_true", help="execute again even if an executed copy is current")
        p.add_argument("--cache", type=pathlib.Path, default=BUILD_DIR / "executed",
                       help="where executed copies are kept (default: build/executed)")
        p.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    from .assets import AssetError

    try:
        if args.command == "assets":
            from .assets import ensure_assets

            ensure_assets(quiet=args.quiet)
        elif args.command == "student":
            from .student import write_student_edition

            written = write_student_edition(args.out, _pick_lessons(args.lessons))
            log(f"student edition: {len(written)} lesson(s) without solution cells in {_show(args.out)}")
        elif args.command == "slides":
            from .slides import export_slides

            notebooks = _executed(args, log)
            decks = export_slides(notebooks, args.out)
            log(f"slides: {len(decks)} deck(s); open {_show(args.out / 'index.html')} (works offline)")
        elif args.command == "site":
            from .site import build_site

            notebooks = _executed(args, log)
            index = build_site(notebooks, args.out, log=log)
            log(f"site: open {_show(index)} (works offline)")
    except AssetError as e:
        print(f"course: {e}", file=sys.stderr)
        return 1
    return 0


def _show(path: pathlib.Path) -> str:
    path = pathlib.Path(path).resolve()
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
