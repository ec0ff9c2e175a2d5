"""Summary numbers of a run: speed-ups relative to the reference variant and counts of outcomes."""

from __future__ import annotations

import pandas as pd

from bench.results.selection import MACHINE, NOISE_THRESHOLD, REFERENCE_VARIANT, case_label, is_noisy, noisy_rows, shape_key


def add_speedup(frame: pd.DataFrame, reference: str = REFERENCE_VARIANT) -> pd.DataFrame:
    """Return frame with `speedup` = reference median / row median, matched on the machine and the case shape."""
    ok = frame[frame["status"] == "ok"]
    key = [MACHINE, *shape_key()]  # a ratio between two machines is no speed-up of a variant
    ref = ok[ok["variant"] == reference][[*key, "median_ms"]].rename(columns={"median_ms": "reference_ms"})
    merged = frame.merge(ref, on=key, how="left")
    merged["speedup"] = merged["reference_ms"] / merged["median_ms"].where(merged["status"] == "ok")
    return merged.drop(columns="reference_ms")


def with_speedup(frame: pd.DataFrame, reference: str = REFERENCE_VARIANT) -> pd.DataFrame:
    """Return frame with `speedup` vs the reference, matched within each source CSV and facet."""
    parts = [add_speedup(group, reference) for _, group in frame.groupby(["source", "facet"], sort=False)]
    return pd.concat(parts, ignore_index=True)


def times(ratio: float) -> str:
    """Return a ratio as a short label: '28×', '1.3×', '0.27×', '0.005×'."""
    if ratio >= 10:
        return f"{ratio:.0f}×"
    return f"{ratio:.1f}×" if ratio >= 1 else f"{ratio:.2g}×"


def milliseconds(value: float) -> str:
    """Return a latency with about three significant digits and no exponent: '1055', '12.3', '0.431'."""
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def median_text(row: pd.Series) -> str:
    """Return an ok row's median in milliseconds, with ' ~' when it is noisy (IQR above NOISE_THRESHOLD of it)."""
    return milliseconds(row["median_ms"]) + (" ~" if is_noisy(row["iqr_ms"], row["median_ms"]) else "")


def failure_counts(frame: pd.DataFrame) -> str:
    """Return a one-line count of the rows by outcome, e.g. '6 cases: 2 ok, 4 failed (1 error, 1 oom, ...)'."""
    counts = frame["status"].value_counts()
    failed = counts.drop(["ok", "skipped"], errors="ignore")
    parts = [f"{counts.get('ok', 0)} ok"] + ([f"{counts['skipped']} skipped"] if "skipped" in counts else [])
    detail = ", ".join(f"{n} {status}" for status, n in failed.sort_index().items())
    parts.append(f"{failed.sum()} failed" + (f" ({detail})" if detail else ""))
    return f"{len(frame)} cases: " + ", ".join(parts)


def noise_line(frame: pd.DataFrame) -> str:
    """Return one line on the noise of the ok rows: how many are noisy, timed once, and the widest spread between rounds."""
    ok = frame[frame["status"] == "ok"]
    noisy, once = int(noisy_rows(ok).sum()), int((ok["n_measurements"] == 1).sum())
    line = (f"noise: {noisy} of {len(ok)} ok rows noisy (IQR above {NOISE_THRESHOLD:.0%} of the median), "
            f"{once} timed in one block (no spread seen)")
    spread = ok["round_spread"].dropna() if "round_spread" in ok.columns else pd.Series(dtype=float)
    if len(spread):
        worst = ok.loc[spread.idxmax()]
        line += (f"; {int(ok['rounds'].max())} rounds per case, widest spread between rounds "
                 f"{spread.max():.0%} ({worst['variant']}, {case_label(worst)})")
    return line
