"""Split a sweep's cases into shards for several machines; where each shard's CSV goes.

All variants of one case shape go to the same shard, so every speed-up (a ratio between variants
of one shape) is measured in one job on one machine. The split depends only on the case list,
so a resubmitted or resumed shard runs the same cases.
"""

from __future__ import annotations

import platform
import re
from pathlib import Path

from attention_variants.case import Case
from bench.axes import case_columns
from bench.results.selection import shape_key

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # what a run id or host may be in a file name


class ShardError(ValueError):
    """A bad --shard or --shards value; the message is one line."""


def parse_shard(text: str) -> tuple[int, int]:
    """Return (index, count) of 'I/N', 1 <= I <= N (ShardError otherwise)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise ShardError(f"bad --shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/4")
    return int(match[1]), int(match[2])


def shape_of(case: Case) -> tuple[object, ...]:
    """Return the case without its variant: the rows that speed-ups compare."""
    key = case_columns(case)
    return tuple(key[column] for column in shape_key())


def case_shapes(cases: list[Case]) -> list[tuple[object, ...]]:
    """Return the distinct case shapes, in the cases' order."""
    return list(dict.fromkeys(shape_of(case) for case in cases))


def shard_cases(cases: list[Case], index: int, count: int) -> list[Case]:
    """Return the cases of shard `index` (1-based) of `count`: case shapes dealt round-robin, in the cases' order.

    The cases come largest first (spec.cases), so dealing shapes in turn gives every shard a
    similar amount of work.
    """
    mine = {shape for number, shape in enumerate(case_shapes(cases)) if number % count == index - 1}
    return [case for case in cases if shape_of(case) in mine]


def safe_name(text: str, fallback: str) -> str:
    """Return text with every character a file name should not hold replaced by '-' (fallback when nothing is left)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:100]
    return cleaned if cleaned and SAFE_NAME.fullmatch(cleaned) else fallback


def host_name() -> str:
    """Return this machine's name as it may appear in a file name."""
    return safe_name(platform.node(), "unknown-host")


def shard_path(folder: Path, index: int, host: str) -> Path:
    """Return where shard `index` measured on `host` writes its rows: FOLDER/shard-<i>-<host>.csv."""
    return folder / f"shard-{index}-{host}.csv"


def shard_files(folder: Path, index: int) -> list[Path]:
    """Return the CSVs of shard `index` in the run's folder, from every host that ran it."""
    return sorted(path for path in folder.glob(f"shard-{index}-*.csv") if path.is_file())
