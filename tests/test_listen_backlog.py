"""A burst of connections is queued by the kernel, not dropped at Sanic's default of 100."""

from __future__ import annotations

from types import SimpleNamespace

from server.app import LISTEN_BACKLOG, raise_backlog


def test_every_listening_socket_queues_a_burst() -> None:
    infos = [SimpleNamespace(settings={"backlog": 100}), SimpleNamespace(settings={})]
    app = SimpleNamespace(state=SimpleNamespace(server_info=infos))
    raise_backlog(app)  # type: ignore[arg-type]
    assert [i.settings["backlog"] for i in infos] == [LISTEN_BACKLOG, LISTEN_BACKLOG]
    assert LISTEN_BACKLOG >= 256  # the booking race's burst fits


def test_the_app_raises_it_in_the_main_process(app) -> None:
    names = [listener.__name__ for listener in app.listeners.get("main_process_start", [])]
    assert "_backlog" in names
