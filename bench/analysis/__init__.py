"""Analysis: summary, report and gate as pure functions over results DataFrames (no printing, no files)."""
