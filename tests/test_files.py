"""Files an install writes for itself: a reader never sees one half-written, and processes
starting at once agree on one (the development key ring once broke a worker's start: it read
the file another worker had created but not yet written)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from backend import files
from backend.config import Settings
from residents.settings import DEV_KEY_FILE, add_development_key, load_key_ring


class _SlowFile(io.TextIOWrapper):
    """Writes its text in two halves with a pause between: a slow disk, or a descheduled
    process, made deterministic."""

    def write(self, text: str) -> int:
        half = len(text) // 2
        written = super().write(text[:half])
        super().flush()
        time.sleep(0.15)
        return written + super().write(text[half:])


@pytest.fixture
def slow_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    real_fdopen = os.fdopen

    def fdopen(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_fdopen(fd, mode, *args, **kwargs)
        if "w" not in mode:
            return handle
        return _SlowFile(handle.detach(), encoding=kwargs.get("encoding") or "utf-8")

    monkeypatch.setattr(os, "fdopen", fdopen)


class _Observer:
    """Reads ``path`` as fast as it can while another thread writes it; keeps what it saw."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                self.seen.add(self.path.read_text(encoding="utf-8"))

    def __enter__(self) -> _Observer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def test_create_once_never_shows_a_half_written_file(tmp_path: Path, slow_writes):
    path = tmp_path / "var" / "thing.key"
    content = "x" * 64 + "\n"
    with _Observer(path) as observer:
        files.create_once(path, content)
        time.sleep(0.05)
    assert path.read_text(encoding="utf-8") == content
    assert observer.seen == {content}
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["thing.key"]  # no temporary left


def test_create_once_keeps_the_first_file(tmp_path: Path):
    path = tmp_path / "thing.key"
    files.create_once(path, "first")
    files.create_once(path, "second")
    assert path.read_text(encoding="utf-8") == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["thing.key"]


def test_replace_shows_the_old_file_or_the_new_never_a_part(tmp_path: Path, slow_writes):
    path = tmp_path / "thing.key"
    files.create_once(path, "old" * 20)
    with _Observer(path) as observer:
        files.replace(path, "new" * 20)
        time.sleep(0.05)
    assert observer.seen <= {"old" * 20, "new" * 20} and "new" * 20 in observer.seen
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["thing.key"]


def test_a_starting_worker_never_reads_a_half_written_development_ring(tmp_path: Path, slow_writes):
    settings = Settings.from_env({"SMARTCIRCLE_VAR_DIR": str(tmp_path)})
    path = tmp_path / DEV_KEY_FILE
    with _Observer(path) as observer:
        ring = load_key_ring(settings, env={})
        time.sleep(0.05)
    assert len(observer.seen) == 1
    (seen,) = observer.seen
    assert json.loads(seen)["index_key"] and load_key_ring(settings, env={}) == ring

    with _Observer(path) as observer:
        kid = add_development_key(settings)
        time.sleep(0.05)
    for text in observer.seen:
        json.loads(text)  # never a part of either version
    assert load_key_ring(settings, env={}).current == kid
