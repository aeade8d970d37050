"""Parsing of IVR_DATABASE_URL into something a backend can open."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from consent_store.exceptions import BadDatabaseURL, DatabaseMissing


@dataclass(frozen=True)
class DatabaseURL:
    scheme: Literal["sqlite", "postgresql"]
    raw: str
    path: Path | None = None

    @property
    def where(self) -> str:
        """The database for messages: the SQLite file's absolute path, or PostgreSQL's
        host:port/database (never the user or password)."""
        if self.path is not None:
            return str(self.path.resolve())
        parts = urlsplit(self.raw)
        return f"PostgreSQL {parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"

    def require_existing(self) -> DatabaseURL:
        """Itself, if it names a database that exists; for a SQLite file that does not,
        DatabaseMissing (commands that only read must never create an empty database)."""
        if self.path is not None and not self.path.exists():
            raise DatabaseMissing(self.where)
        return self


def parse_database_url(url: str) -> DatabaseURL:
    """Accept `sqlite:///relative.db`, `sqlite:////abs/path.db` or `postgresql://...`."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        if parts.netloc:
            raise BadDatabaseURL(url, "use sqlite:///path/file.db (three slashes)")
        path_text = parts.path[1:] if parts.path.startswith("/") else parts.path
        if not path_text:
            raise BadDatabaseURL(url, "no file path after sqlite:///")
        path = Path(path_text)
        if path.exists() and path.is_dir():
            raise BadDatabaseURL(url, f"{path} is a directory")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise BadDatabaseURL(url, f"directory {parent} does not exist")
        return DatabaseURL(scheme="sqlite", raw=url, path=path)
    if parts.scheme in ("postgresql", "postgres"):
        return DatabaseURL(scheme="postgresql", raw=url)
    raise BadDatabaseURL(url, "the scheme must be sqlite:/// or postgresql://")
