"""Where the service keeps things: artifact files under one data directory, records in SQL."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import select

from advguard.config import Settings, get_settings
from advguard.storage.db import (
    BUNDLED_DATASET_ID,
    FINISHED_STATES,
    JOB_STATES,
    Database,
    DatasetRecord,
    DetectorRecord,
    JobProgress,
    JobRecord,
    JobState,
    ModelRecord,
    new_id,
    utc_now,
)


class Storage:
    """The data directory (``datasets/``, ``models/``, ``detectors/``, ``jobs/``) and the
    metadata database, shared by the API and the workers."""

    def __init__(self, data_dir: Path, database_url: str) -> None:
        self.data_dir = data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(database_url)

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(settings.data_dir, settings.resolved_database_url)

    def folder(self, kind: str, record_id: str) -> Path:
        """``<data_dir>/<kind>/<id>``: the files of one dataset, model, detector or job."""
        return self.data_dir / kind / record_id

    def resolve_inside(self, base: Path, relative: str) -> Path | None:
        """``base/relative`` if it is an existing file inside ``base``, else ``None``."""
        candidate = (base / relative).resolve()
        if not candidate.is_relative_to(base.resolve()) or not candidate.is_file():
            return None
        return candidate

    def job_progress(self, job_id: str) -> tuple[str, int, int]:
        """A job's stage and done/total, summed over its progress slots."""
        with self.db.session() as session:
            slots = session.scalars(
                select(JobProgress)
                .where(JobProgress.job_id == job_id)
                .order_by(JobProgress.updated_at)
            ).all()
            if not slots:
                return "", 0, 0
            return slots[-1].stage, sum(s.done for s in slots), sum(s.total for s in slots)

    def set_progress(self, job_id: str, slot: int, stage: str, done: int, total: int) -> None:
        """Record one slot's progress (each chunk of a split job writes its own slot)."""
        with self.db.session() as session:
            row = session.get(JobProgress, (job_id, slot))
            if row is None:
                row = JobProgress(job_id=job_id, slot=slot)
                session.add(row)
            row.stage, row.done, row.total, row.updated_at = stage, done, total, utc_now()

    def ensure_bundled_dataset(self, image_size: int) -> None:
        """The bundled synthetic MRI set is always listed (its images are generated at
        ``image_size``, the service's setting)."""
        from advguard.data.synthetic import BUNDLED_CLASS_NAMES

        with self.db.session() as session:
            if session.get(DatasetRecord, BUNDLED_DATASET_ID) is None:
                session.add(
                    DatasetRecord(
                        id=BUNDLED_DATASET_ID,
                        name="bundled synthetic brain MRI (demonstration)",
                        source=BUNDLED_DATASET_ID,
                        class_names=list(BUNDLED_CLASS_NAMES),
                        image_size=image_size,
                    )
                )


@lru_cache
def get_storage() -> Storage:
    """The process-wide storage, from the settings."""
    return Storage.from_settings(get_settings())


__all__ = [
    "BUNDLED_DATASET_ID",
    "FINISHED_STATES",
    "JOB_STATES",
    "DatasetRecord",
    "DetectorRecord",
    "JobProgress",
    "JobRecord",
    "JobState",
    "ModelRecord",
    "Storage",
    "get_storage",
    "new_id",
    "utc_now",
]
