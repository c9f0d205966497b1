"""plain_rows: a values_list queryset's rows as tuples, fetched the fastest way the
database driver allows.

A snapshot build reads some two hundred thousand rows. Through the ORM's iterator, and
with PostgreSQL's text format, turning them into Python values cost more than the
queries: psycopg 3 reads the binary format (integers, floats and booleans without
parsing text) in C. The query is still the ORM's, so every database gets the same rows,
and it is still logged where Django logs queries.
"""

from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet

BINARY = 1  # psycopg.pq.Format.BINARY


def _binary_cursor_class() -> Any:
    """psycopg 3's server-binding Cursor where Django's PostgreSQL backend runs on
    psycopg 3 (psycopg2 cannot read the binary format), else None."""
    try:
        from django.db.backends.postgresql.psycopg_any import is_psycopg3
    except ImportError:  # no PostgreSQL driver at all
        return None
    if not is_psycopg3:
        return None
    from psycopg import Cursor

    return Cursor


def plain_rows(queryset: QuerySet[Any, Any]) -> list[tuple[Any, ...]]:
    """The rows of a ``values_list`` queryset (no flat, no named rows), as the ORM gives
    them; on PostgreSQL with psycopg 3, fetched in the binary format in one call."""
    connection = connections[queryset.db]
    cursor_class = _binary_cursor_class() if connection.vendor == "postgresql" else None
    if cursor_class is None:
        return list(queryset)
    try:
        sql, params = queryset.query.get_compiler(using=queryset.db).as_sql()
    except EmptyResultSet:  # such as pk__in=[]: the ORM would not ask the database
        return []
    connection.ensure_connection()
    # A cursor with server-side binding (Django's own is client-side, which cannot read
    # the binary format), wrapped as Django wraps its cursors so the query is logged.
    raw = cursor_class(connection.connection)
    raw.format = BINARY
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(raw) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
