"""One-line messages: whatever the harness reports about an error fits on one line."""


def first_line(err: BaseException) -> str:
    """Return the first line of err's message ('' when it has none)."""
    return (str(err).strip().splitlines() or [""])[0]
