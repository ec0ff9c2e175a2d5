"""A git revision checked out into a temporary worktree, removed afterwards whatever happens.

The A/B gate runs a base revision's own code beside the working tree's. `git worktree add
--detach` gives that revision's files without touching the user's checkout; the worktree is
removed on the way out of the `with` block, also on Ctrl-C (KeyboardInterrupt), on SIGTERM
(turned into SystemExit here for the duration) and on any exception.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


class RevisionError(ValueError):
    """A revision that cannot be checked out (not a git checkout, unknown revision); one line, exit 2."""


@dataclass(frozen=True)
class Revision:
    """A resolved revision: what the user typed, its full hash and its subject line."""

    name: str
    commit: str
    subject: str

    def label(self) -> str:
        """Return e.g. `HEAD~1 (1a2b3c4d: Faster slide)`."""
        return f"{self.name} ({self.commit[:8]}: {self.subject})"


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    if done.returncode:
        raise RevisionError(f"git {' '.join(args)}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout.strip()


def resolve(repo: Path, name: str) -> Revision:
    """Return name resolved to a commit of the repository at repo, or raise RevisionError."""
    if not shutil.which("git"):
        raise RevisionError("git is not installed: --base-rev needs it")
    if name.startswith("-"):
        raise RevisionError(f"bad revision {name!r}")
    if not _is_repo(repo):
        raise RevisionError(f"{repo} is not a git checkout: --base-rev needs one")
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    except RevisionError:
        raise RevisionError(f"{name!r} is not a revision of {repo} (a shallow clone may lack it)") from None
    return Revision(name, commit, _git(repo, "log", "-1", "--format=%s", commit))


def working_tree(repo: Path) -> str:
    """Return a label of the working tree: its HEAD commit and whether it has uncommitted changes."""
    if not _is_repo(repo):
        return f"working tree {repo}"
    dirty = " with uncommitted changes" if _git(repo, "status", "--porcelain", "--untracked-files=no") else ""
    return f"working tree (HEAD {head(repo)[:8]}{dirty})"


def head(repo: Path) -> str:
    """Return the HEAD commit of repo, or 'unknown' where it is not a git checkout."""
    try:
        return _git(repo, "rev-parse", "HEAD")
    except RevisionError:
        return "unknown"


def changed_files(repo: Path, revision: Revision) -> list[str] | None:
    """Return the paths that differ between revision and the working tree (committed or not), or None if unknown."""
    try:
        return _git(repo, "diff", "--name-only", revision.commit).splitlines()
    except RevisionError:
        return None


def _is_repo(repo: Path) -> bool:
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-dir"], capture_output=True).returncode == 0


@contextlib.contextmanager
def checked_out(repo: Path, revision: Revision) -> Iterator[Path]:
    """Yield a temporary worktree of revision; remove it (and git's record of it) afterwards."""
    parent = Path(tempfile.mkdtemp(prefix="bench-base-"))
    path = parent / "tree"
    previous = _on_sigterm(_exit_on_sigterm)
    try:
        _git(repo, "worktree", "add", "--detach", "--quiet", str(path), revision.commit)
        yield path
    finally:
        subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(path)], capture_output=True)
        shutil.rmtree(parent, ignore_errors=True)
        subprocess.run(["git", "-C", str(repo), "worktree", "prune"], capture_output=True)
        _on_sigterm(previous)


def _on_sigterm(handler: object) -> object:
    """Install handler for SIGTERM and return the previous one (only the main thread may; else nothing)."""
    if handler is None or threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)
