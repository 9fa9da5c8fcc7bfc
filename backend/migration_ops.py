"""Migration operations that Tortoise does not ship.

:class:`AdoptOrCreateModel` moves a model from one app label to another without touching its
table: on a database where the table already exists (created by the old app's migrations) it only
records the model in the new app's migration state; on a new database it creates the table as
``CreateModel`` would. The end state is the same table either way.

:class:`RunSQLOn` is ``RunSQL`` for one database dialect only (SQLite's R*Tree of venue points,
``venues/migrations/0005_venue_rtree.py``).
"""

from __future__ import annotations

from tortoise.migrations.operations import CreateModel, RunSQL
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state import State


class AdoptOrCreateModel(CreateModel):
    """``CreateModel`` that adopts an existing table of the same name instead of failing."""

    async def database_forward(
        self,
        app_label: str,
        old_state: State,
        new_state: State,
        state_editor: BaseSchemaEditor | None = None,
    ) -> None:
        if state_editor is not None and await _table_exists(state_editor, self._table()):
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)

    def _table(self) -> str:
        return str((self.options or {})["table"])


async def _table_exists(editor: BaseSchemaEditor, table: str) -> bool:
    if not table.replace("_", "").isalnum():  # a constant of a migration file, never user input
        raise ValueError(f"unexpected table name {table!r}")
    dialect = editor.client.capabilities.dialect
    if dialect == "sqlite":
        sql = f"SELECT name FROM sqlite_master WHERE type='table' AND name='{table}'"  # noqa: S608
    else:
        sql = f"SELECT to_regclass('public.{table}') AS name"
    _, rows = await editor.client.execute_query(sql)
    return bool(rows) and rows[0]["name"] is not None


class RunSQLOn(RunSQL):
    """``RunSQL`` applied only on one database dialect (``"sqlite"``, ``"postgres"``), a no-op on
    the others, so one migration history serves both profiles. Each item of ``sql`` is one
    statement (a ``CREATE TRIGGER`` included)."""

    def __init__(self, dialect: str, sql: list[str], reverse_sql: list[str] | None = None) -> None:
        super().__init__(sql, reverse_sql)
        self.dialect = dialect

    def describe(self) -> str:
        return f"Run SQL on {self.dialect}"

    async def database_forward(
        self,
        app_label: str,
        old_state: State,
        new_state: State,
        state_editor: BaseSchemaEditor | None = None,
    ) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == self.dialect:
            await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(
        self,
        app_label: str,
        old_state: State,
        new_state: State,
        state_editor: BaseSchemaEditor | None = None,
    ) -> None:
        if state_editor is not None and state_editor.client.capabilities.dialect == self.dialect:
            await super().database_backward(app_label, old_state, new_state, state_editor)

    async def _run_sql(self, state_editor: BaseSchemaEditor, sqls: list[str]) -> None:
        # One statement each, run as it is: the SQLite editor would split a trigger's body at
        # its semicolons.
        for sql in sqls:
            if state_editor.collect_sql:
                state_editor.collected_sql.append(sql)
            else:
                await state_editor.client.execute_query(sql)
