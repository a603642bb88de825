"""Where the service keeps things: artifact files under one data directory, records in SQL."""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class StageProgress:
    """Where a job stands: ``done`` of ``total`` (in the stage's own units) in ``stage``,
    its stage ``stage_number`` of ``stage_count``."""

    stage: str
    done: int
    total: int
    stage_number: int = 1
    stage_count: int = 1

    @property
    def fraction(self) -> float:
        """Of the current stage: done / total (0 while the total is not known)."""
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0

    @property
    def overall(self) -> float:
        """Of the whole job, counting each stage as an equal share: it never goes back."""
        return (self.stage_number - 1 + self.fraction) / max(self.stage_count, 1)


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

    def job_progress(self, job_id: str) -> StageProgress:
        """A job's current stage (the latest one any progress slot reached), with done/total
        summed over the slots in that stage (each chunk of a split job has its own)."""
        with self.db.session() as session:
            slots = session.scalars(
                select(JobProgress)
                .where(JobProgress.job_id == job_id)
                .order_by(JobProgress.stage_number, JobProgress.updated_at)
            ).all()
        if not slots:
            return StageProgress("", 0, 0)
        current = [slot for slot in slots if slot.stage_number == slots[-1].stage_number]
        return StageProgress(
            stage=current[-1].stage,
            done=sum(slot.done for slot in current),
            total=sum(slot.total for slot in current),
            stage_number=slots[-1].stage_number,
            stage_count=max(slot.stage_count for slot in slots),
        )

    def set_progress(
        self,
        job_id: str,
        slot: int,
        stage: str,
        done: int,
        total: int,
        stage_number: int = 1,
        stage_count: int = 1,
    ) -> None:
        """Record one slot's progress (each chunk of a split job writes its own slot):
        ``done`` of ``total`` in ``stage``, the job's stage ``stage_number`` of
        ``stage_count``."""
        with self.db.session() as session:
            row = session.get(JobProgress, (job_id, slot))
            if row is None:
                row = JobProgress(job_id=job_id, slot=slot)
                session.add(row)
            row.stage, row.done, row.total, row.updated_at = stage, done, total, utc_now()
            row.stage_number, row.stage_count = stage_number, stage_count

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
    "StageProgress",
    "Storage",
    "get_storage",
    "new_id",
    "utc_now",
]
