"""Sudoku solver used as the scaleup-ci demo workload.

Usage::

    python -m scaleup_ci.demo.solve INPUT OUTPUT
    python path/to/solve.py INPUT OUTPUT

Reads one puzzle per JSONL line from INPUT (``{"id": ..., "puzzle": "<81 chars>"}``, with ``.`` or
``0`` for blanks), solves each by depth-first backtracking with constraint propagation (naked and
hidden singles, then branching on the cell with the fewest candidates), checks its own answer, and
appends one JSONL record per puzzle to OUTPUT, flushed at once so that the records survive a kill::

    {"id": ..., "solution": "<81 digits>", "valid": true, "nodes": int, "seconds": float}

It honours ``SCALEUP_DEADLINE`` (Unix time, optional): once the deadline is less than 0.5 s away it
stops before the next puzzle and exits 0. On SIGTERM it stops at once and exits 0; every record
already written stays in OUTPUT. A malformed input line is reported on stderr with its line number
and the exit code is 1.

Standard library only and no relative imports, so the file also runs on its own.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

DEADLINE_MARGIN_SECONDS = 0.5
_DIGITS = range(1, 10)


def _peers() -> tuple[tuple[int, ...], ...]:
    peers = []
    for cell in range(81):
        row, col = divmod(cell, 9)
        box_row, box_col = 3 * (row // 3), 3 * (col // 3)
        group = {row * 9 + c for c in range(9)}
        group |= {r * 9 + col for r in range(9)}
        group |= {(box_row + r) * 9 + box_col + c for r in range(3) for c in range(3)}
        group.discard(cell)
        peers.append(tuple(sorted(group)))
    return tuple(peers)


PEERS = _peers()
UNITS: tuple[tuple[int, ...], ...] = (
    tuple(tuple(r * 9 + c for c in range(9)) for r in range(9))
    + tuple(tuple(r * 9 + c for r in range(9)) for c in range(9))
    + tuple(
        tuple((br + r) * 9 + bc + c for r in range(3) for c in range(3))
        for br in (0, 3, 6)
        for bc in (0, 3, 6)
    )
)


class MalformedInput(ValueError):
    """An input line that is not a puzzle record."""


class _Stop(Exception):
    """Raised from the SIGTERM handler to unwind the solver."""


def parse_puzzle(text: str) -> list[int]:
    """Turn an 81-character puzzle string into a list of ints (0 for a blank)."""
    if len(text) != 81:
        raise MalformedInput(f"puzzle has {len(text)} characters, expected 81")
    grid = []
    for ch in text:
        if ch in ".0":
            grid.append(0)
        elif "1" <= ch <= "9":
            grid.append(int(ch))
        else:
            raise MalformedInput(f"puzzle contains {ch!r}; use 1-9 and '.' for blanks")
    return grid


def solve(puzzle: list[int]) -> tuple[list[int] | None, int]:
    """Solve a puzzle; return (solution or None, number of search nodes visited).

    Depth-first search that places one digit per node. At each node it computes the candidates of
    every empty cell from its peers (a cell with none is a dead end), then picks what to place:
    a cell with a single candidate if there is one, else a digit that has only one place left in
    some row, column or box (a unit where a missing digit has no place is a dead end), else it
    branches over the candidates of the cell with the fewest (minimum remaining values).
    """
    grid = list(puzzle)
    for cell, digit in enumerate(grid):
        if digit and any(grid[p] == digit for p in PEERS[cell]):
            return None, 0  # the givens already clash
    nodes = 0

    def search() -> bool:
        nonlocal nodes
        nodes += 1
        candidates: dict[int, list[int]] = {}
        best_cell = -1
        for cell in range(81):
            if grid[cell]:
                continue
            used = {grid[p] for p in PEERS[cell]}
            options = [d for d in _DIGITS if d not in used]
            if not options:
                return False
            candidates[cell] = options
            if best_cell < 0 or len(options) < len(candidates[best_cell]):
                best_cell = cell
        if best_cell < 0:
            return True
        choices = [(best_cell, d) for d in candidates[best_cell]]
        if len(choices) > 1:
            for unit in UNITS:
                present = {grid[c] for c in unit}
                for digit in _DIGITS:
                    if digit in present:
                        continue
                    spots = [c for c in unit if not grid[c] and digit in candidates[c]]
                    if not spots:
                        return False
                    if len(spots) == 1 and len(choices) > 1:
                        choices = [(spots[0], digit)]
        for cell, digit in choices:
            grid[cell] = digit
            if search():
                return True
            grid[cell] = 0
        return False

    return (grid if search() else None), nodes


def is_valid_solution(puzzle: list[int], solution: list[int]) -> bool:
    """True when every row, column and box holds 1-9 once and every given is kept."""
    if len(solution) != 81 or any(g and g != s for g, s in zip(puzzle, solution, strict=True)):
        return False
    full = set(_DIGITS)
    return all({solution[c] for c in unit} == full for unit in UNITS)


def solve_record(line: str, line_number: int) -> dict[str, object]:
    """Parse one input line and return the output record for it."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise MalformedInput(f"line {line_number}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise MalformedInput(f"line {line_number}: expected a JSON object")
    ident = record.get("id")
    text = record.get("puzzle")
    if not isinstance(ident, str) or not ident:
        raise MalformedInput(f"line {line_number}: missing or non-string 'id'")
    if not isinstance(text, str):
        raise MalformedInput(f"line {line_number}: missing or non-string 'puzzle'")
    try:
        puzzle = parse_puzzle(text)
    except MalformedInput as exc:
        raise MalformedInput(f"line {line_number}: {exc}") from None
    started = time.perf_counter()
    solution, nodes = solve(puzzle)
    valid = solution is not None and is_valid_solution(puzzle, solution)
    seconds = time.perf_counter() - started
    return {
        "id": ident,
        "solution": "".join(map(str, solution)) if solution is not None else "",
        "valid": valid,
        "nodes": nodes,
        "seconds": round(seconds, 6),
    }


def _read_deadline() -> float | None:
    raw = os.environ.get("SCALEUP_DEADLINE", "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        print(f"solve: ignoring SCALEUP_DEADLINE={raw!r} (not a number)", file=sys.stderr)
        return None


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                yield number, line


def run(input_path: Path, output_path: Path) -> int:
    """Solve every puzzle in input_path, appending records to output_path; return the exit code."""
    deadline = _read_deadline()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _Stop

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    written = 0
    try:
        with output_path.open("a", encoding="utf-8") as out:
            for number, line in _numbered_lines(input_path):
                if deadline is not None and time.time() >= deadline - DEADLINE_MARGIN_SECONDS:
                    print(
                        f"solve: stopping before line {number}: deadline is near "
                        f"({written} records written)",
                        file=sys.stderr,
                    )
                    break
                record = solve_record(line, number)
                if not record["valid"]:
                    print(f"solve: line {number}: no valid solution found", file=sys.stderr)
                out.write(json.dumps(record, separators=(",", ":")) + "\n")
                out.flush()
                written += 1
    except _Stop:
        print(f"solve: SIGTERM received, stopping ({written} records written)", file=sys.stderr)
        return 0
    except MalformedInput as exc:
        print(f"solve: {input_path}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"solve: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] in ("-h", "--help"):
        print("usage: python -m scaleup_ci.demo.solve INPUT OUTPUT", file=sys.stderr)
        return 2
    return run(Path(args[0]), Path(args[1]))


if __name__ == "__main__":
    sys.exit(main())
