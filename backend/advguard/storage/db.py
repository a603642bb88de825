"""Metadata records (datasets, models, detectors, jobs) in SQL through SQLAlchemy.

SQLite by default (one file in the data directory, shared by the API and the workers),
PostgreSQL by URL. Artifacts themselves are files; rows only point at them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, get_args

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    inspect,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.sql.elements import TextClause

BUNDLED_DATASET_ID = "bundled"

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
"""A job's state: the one declaration the API schemas, the worker and the web app read."""
JOB_STATES: tuple[JobState, ...] = get_args(JobState)
FINISHED_STATES: tuple[JobState, ...] = ("succeeded", "failed", "cancelled")


def new_id() -> str:
    """A short random identifier for a record."""
    return uuid.uuid4().hex[:16]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class DatasetRecord(Base):
    """An image dataset: the bundled one, or an uploaded folder-per-class zip."""

    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(500))
    """What :func:`advguard.data.load_dataset` is given: ``bundled`` or the zip's path."""
    class_names: Mapped[list[Any]] = mapped_column(default=list)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Images per split and class: ``{"train": {"glioma": 500, …}, "test": {…}}``."""
    skipped: Mapped[list[Any]] = mapped_column(default=list)
    volumes: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    """The NIfTI volumes read: file, shape, slices kept and the intensity window each got."""
    slice_axis: Mapped[int] = mapped_column(Integer, default=2, server_default="2")
    """The axis NIfTI volumes are cut across (0, 1 or 2)."""
    image_size: Mapped[int] = mapped_column(Integer, default=128)
    channels: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class ModelRecord(Base):
    """A classifier: uploaded (TorchScript or safetensors) or trained by a job."""

    __tablename__ = "models"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(40))
    """``torchscript``, ``safetensors`` or ``trained``."""
    path: Mapped[str] = mapped_column(String(500))
    """What :func:`advguard.models.load_classifier` is given."""
    class_names: Mapped[list[Any]] = mapped_column(default=list)
    image_size: Mapped[int] = mapped_column(Integer, default=128)
    channels: Mapped[int] = mapped_column(Integer, default=1)
    dataset_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class DetectorRecord(Base):
    """A trained detector, saved as a guard (classifier + detector) folder."""

    __tablename__ = "detectors"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(String(500))
    model_id: Mapped[str] = mapped_column(String(32))
    set_job_id: Mapped[str] = mapped_column(String(32))
    """The ``build_adversarial_set`` job whose set trained it."""
    job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    attack_names: Mapped[list[Any]] = mapped_column(default=list)
    threshold: Mapped[float] = mapped_column(Float, default=0.5)
    report_job_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """The latest ``evaluate`` job that reported on it."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class JobRecord(Base):
    """A long-running piece of work done by a worker, with its progress and outcome."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    type: Mapped[str] = mapped_column(String(40), index=True)
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """What the user calls it (``None`` in databases from before jobs had names)."""
    state: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class JobProgress(Base):
    """Progress of one slot of a job: slot 0 for a single task, one slot per chunk for a
    job split over several workers (so concurrent chunks never write the same row)."""

    __tablename__ = "job_progress"
    job_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    stage: Mapped[str] = mapped_column(String(200), default="")
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer, default=0)
    stage_number: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    """Which of the job's ``stage_count`` stages ``stage`` is (1-based)."""
    stage_count: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Database:
    """An engine and a session factory; creates the tables on first use."""

    def __init__(self, url: str) -> None:
        self.url = url
        is_sqlite = url.startswith("sqlite")
        self.engine: Engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30} if is_sqlite else {},
            pool_pre_ping=not is_sqlite,
        )
        if is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        add_missing_columns(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raise if the database cannot answer a trivial query."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")


def add_missing_columns(engine: Engine) -> None:
    """Add the columns a newer version of a table has to a database made by an older one
    (``create_all`` makes missing tables only). Every added column has a server default,
    so the rows already there stay valid; nothing is ever dropped, and only values that
    cannot be read (see below) are changed."""
    existing = inspect(engine)
    with engine.begin() as connection:
        for table in Base.metadata.sorted_tables:
            if not existing.has_table(table.name):
                continue
            present = {column["name"] for column in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in present:
                    continue
                if column.server_default is None and not column.nullable:
                    raise RuntimeError(f"column {table.name}.{column.name} needs a server default")
                kind = column.type.compile(dialect=engine.dialect)
                default = (
                    f" DEFAULT {_sql_literal(column.server_default.arg)}"  # type: ignore[attr-defined]
                    if column.server_default is not None
                    else ""
                )
                connection.exec_driver_sql(
                    f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {kind}{default}'
                )
            # Earlier versions of this function stored '' in SQLite for a JSON default (on
            # PostgreSQL they failed outright); '' is never JSON: it becomes that default.
            for column in table.columns:
                if (
                    engine.dialect.name == "sqlite"
                    and isinstance(column.type, JSON)
                    and column.server_default is not None
                ):
                    empty = f"\"{column.name}\" = ''"
                    # Looked for first: every process opens the database, and an UPDATE
                    # would take SQLite's write lock at each start even with nothing to mend.
                    found = f'SELECT 1 FROM "{table.name}" WHERE {empty} LIMIT 1'
                    if connection.exec_driver_sql(found).first():
                        literal = _sql_literal(column.server_default.arg)  # type: ignore[attr-defined]
                        connection.exec_driver_sql(
                            f'UPDATE "{table.name}" SET "{column.name}" = {literal} WHERE {empty}'
                        )


def _sql_literal(value: object) -> str:
    """A server default as ``CREATE TABLE`` writes it: SQL text as it is, any other value
    as a quoted string (unquoted, SQLite read the JSON default ``[]`` as an empty name and
    stored ``''``, which no JSON reader takes)."""
    if isinstance(value, TextClause):
        return value.text
    return "'" + str(value).replace("'", "''") + "'"


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; foreign keys make cascades real.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
