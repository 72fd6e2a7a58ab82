"""Deterministic Sudoku dataset for the scaleup-ci demo.

Each puzzle starts from a solved grid built by a seeded, randomised backtracking fill; cells are
then removed in a seeded random order until the puzzle keeps the chosen number of givens. Fewer
givens means more cells for the solver to place and more candidates to weigh at each step, so the
cost per puzzle rises steadily from ``easy`` to ``hard``. The same ``n`` and ``seed`` always give
the same bytes, and a dataset's first records do not depend on ``n``.

Usage::

    python -m scaleup_ci.demo.generate OUT [--n N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

from scaleup_ci.demo.solve import PEERS  # the solver stays stdlib-only and standalone

DEFAULT_N = 16_000
DEFAULT_SEED = 7
MINI_N = 3
ID_WIDTH = 5

# difficulty -> inclusive range of givens (fewer givens = harder).
GIVENS: dict[str, tuple[int, int]] = {
    "easy": (36, 50),
    "medium": (20, 35),
    "hard": (8, 19),
}
DIFFICULTIES = tuple(GIVENS)


def solved_grid(rng: random.Random) -> list[int]:
    """A complete valid grid from a backtracking fill that tries digits in a seeded order."""
    grid = [0] * 81

    def fill(cell: int) -> bool:
        if cell == 81:
            return True
        used = {grid[p] for p in PEERS[cell]}
        digits = [d for d in range(1, 10) if d not in used]
        rng.shuffle(digits)
        for digit in digits:
            grid[cell] = digit
            if fill(cell + 1):
                return True
        grid[cell] = 0
        return False

    if not fill(0):  # pragma: no cover - an empty grid always has a completion
        raise RuntimeError("backtracking fill failed")
    return grid


def make_record(index: int, rng: random.Random) -> dict[str, object]:
    """The dataset record at position ``index`` (0-based), drawing from ``rng``."""
    difficulty = DIFFICULTIES[rng.randrange(len(DIFFICULTIES))]
    low, high = GIVENS[difficulty]
    givens = rng.randint(low, high)
    grid = solved_grid(rng)
    cells = list(range(81))
    rng.shuffle(cells)
    for cell in cells[: 81 - givens]:
        grid[cell] = 0
    return {
        "id": f"sudoku-{index + 1:0{ID_WIDTH}d}",
        "puzzle": "".join(str(d) if d else "." for d in grid),
        "givens": givens,
        "difficulty": difficulty,
    }


def generate(path: Path, n: int = DEFAULT_N, seed: int = DEFAULT_SEED) -> None:
    """Write ``n`` puzzles to ``path`` as JSONL; same ``n`` and ``seed`` give the same bytes.

    The file is written next to ``path`` and renamed into place, so a half-written dataset is
    never left under the final name.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    rng = random.Random(seed)
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="\n") as out:
        for index in range(n):
            out.write(json.dumps(make_record(index, rng), separators=(", ", ": ")) + "\n")
    os.replace(tmp, path)


def generate_mini(path: Path, seed: int = DEFAULT_SEED) -> None:
    """Write the first three puzzles of the dataset (same seed) as the mini file."""
    generate(path, n=MINI_N, seed=seed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scaleup_ci.demo.generate",
        description="Write the deterministic Sudoku demo dataset as JSONL.",
    )
    parser.add_argument("out", type=Path, help="output JSONL file")
    parser.add_argument("--n", type=int, default=DEFAULT_N, help=f"puzzles (default {DEFAULT_N})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default 7)")
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("--n must be >= 0")
    generate(args.out, n=args.n, seed=args.seed)
    print(f"wrote {args.n} puzzles to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
