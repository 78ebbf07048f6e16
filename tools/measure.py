"""Layout figures for a checkout: module lines per folder, function lengths per folder, duplicate pairs.

Usage: python tools/measure.py [REPO_DIR]   (defaults to the current folder)

Function length is the AST span (`end_lineno - lineno + 1`) of every def/async def, nested ones
included; the duplicate count is the first line of `duplicates --most 40 --seconds 60` when that
command is on PATH.
"""

from __future__ import annotations

import ast
import shutil
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

FOLDERS_SKIPPED = {".venv", "data", "assets", "node_modules", ".git"}


def iter_python_files(root: Path) -> list[Path]:
    """Tracked Python files under `root` (git ls-files), or every *.py outside skipped folders."""
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "*.py"], capture_output=True, text=True, check=True)
        return [root / line for line in out.stdout.splitlines() if line]
    except (subprocess.CalledProcessError, FileNotFoundError):
        return [p for p in root.rglob("*.py") if not FOLDERS_SKIPPED & set(p.relative_to(root).parts)]


def folder_of(rel: Path) -> str:
    """The folder a file is counted under: its parent directory ('.' for top-level files)."""
    return str(rel.parent) if str(rel.parent) != "." else "."


def percentile(values: list[int], fraction: float) -> int:
    """Nearest-rank percentile of `values` (non-empty)."""
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def main(root: Path) -> None:
    sizes: dict[str, list[tuple[str, int]]] = defaultdict(list)
    lengths: dict[str, list[int]] = defaultdict(list)
    for path in iter_python_files(root):
        rel = path.relative_to(root)
        text = path.read_text(encoding="utf-8")
        folder = folder_of(rel)
        sizes[folder].append((rel.name, len(text.splitlines())))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lengths[folder].append((node.end_lineno or node.lineno) - node.lineno + 1)
    print(f"{'folder':<24}{'files':>6}{'lines':>8}{'largest':>8}  {'fn':>5}{'median':>7}{'p90':>5}{'max':>5}")
    for folder in sorted(sizes):
        files = sizes[folder]
        fn = lengths.get(folder) or [0]
        print(
            f"{folder:<24}{len(files):>6}{sum(n for _, n in files):>8}{max(n for _, n in files):>8}  "
            f"{len(lengths.get(folder, [])):>5}{statistics.median(fn):>7.0f}{percentile(fn, 0.9):>5}{max(fn):>5}"
        )
    big = sorted(((n, f"{folder}/{name}") for folder, files in sizes.items() for name, n in files), reverse=True)
    print("modules over 600 lines:", ", ".join(f"{p} ({n})" for n, p in big if n > 600) or "none")
    if shutil.which("duplicates"):
        out = subprocess.run(
            ["duplicates", "--most", "40", "--seconds", "60"], cwd=root, capture_output=True, text=True
        ).stdout
        print("duplicates:", out.splitlines()[0] if out else "(no output)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve())
