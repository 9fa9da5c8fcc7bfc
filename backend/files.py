"""Small files an install writes for itself (its secret, the development key ring), written so
that a reader never sees half of one: several workers start at once and read them at once."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _private_temporary(path: Path, content: str) -> str:
    """A temporary file beside ``path``, readable by its owner only (0600), holding
    ``content`` on disk; the caller links or renames it into place, then it is gone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(temporary)
        raise
    return temporary


def create_once(path: Path, content: str) -> None:
    """Create ``path`` holding ``content`` unless it exists (0600).

    The content is written to a private temporary file first, which is then hard-linked to the
    final name: the link fails if another process got there first, and that one's content
    stays. So processes starting at once agree on one file, and no reader ever sees it empty
    or half-written (an ``O_EXCL`` create followed by a write would show it empty)."""
    if path.exists():
        return
    temporary = _private_temporary(path, content)
    try:
        with contextlib.suppress(FileExistsError):  # another process linked first: it wins
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def replace(path: Path, content: str) -> None:
    """Put ``content`` at ``path`` (0600) in one step: readers see the old file or the new."""
    temporary = _private_temporary(path, content)
    try:
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
