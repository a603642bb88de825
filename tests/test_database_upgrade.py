"""A data folder made by an older version opens in this one: the columns added since get
their defaults, and values an earlier upgrade stored unreadable are mended."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from advguard.storage.db import Database, DatasetRecord

# The datasets table as an older version made it, before the NIfTI volumes and the slice
# axis were recorded.
OLD_TABLES = """
CREATE TABLE datasets (
    id VARCHAR(32) PRIMARY KEY, name VARCHAR(200) NOT NULL, source VARCHAR(500) NOT NULL,
    class_names JSON NOT NULL, counts JSON NOT NULL, skipped JSON NOT NULL,
    image_size INTEGER NOT NULL, channels INTEGER NOT NULL, created_at DATETIME NOT NULL
);
INSERT INTO datasets VALUES ('old', 'scans', 'bundled', '["a", "b"]', '{}', '[]', 128, 1,
    '2026-11-01 10:00:00.000000');
"""


def test_an_older_database_opens_with_the_new_columns_defaulted(tmp_path: Path) -> None:
    path = tmp_path / "advguard.db"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_TABLES)
    database = Database(f"sqlite:///{path}")
    with database.session() as session:
        record = session.get(DatasetRecord, "old")
        assert record is not None
        assert (record.name, record.class_names, record.volumes, record.slice_axis) == (
            "scans",
            ["a", "b"],
            [],
            2,
        )


def test_a_json_default_stored_empty_by_an_earlier_upgrade_is_mended(tmp_path: Path) -> None:
    path = tmp_path / "advguard.db"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_TABLES)
        # What the earlier upgrade did: the JSON default written unquoted, read as ''.
        old.execute("ALTER TABLE datasets ADD COLUMN volumes JSON DEFAULT []")
        assert old.execute("SELECT volumes FROM datasets").fetchone() == ("",)
    with Database(f"sqlite:///{path}").session() as session:
        record = session.get(DatasetRecord, "old")
        assert record is not None and record.volumes == []
