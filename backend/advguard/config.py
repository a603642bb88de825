"""Settings read from environment variables (prefix ``ADVGUARD_``) with safe local defaults."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

# backend/advguard/config.py -> the repository root is two folders above the package.
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as ``ADVGUARD_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="ADVGUARD_")

    data_dir: Path = Path("advguard-data")
    """Where jobs keep models, datasets and reports."""

    shared_data_dir: Path = REPOSITORY_ROOT.parent / "shared" / "data"
    """Reference datasets that live outside the repository (real MRI for tests and benches)."""

    image_size: int = 128
    """Side length images are resized to when a dataset is imported."""

    max_image_pixels: int = 50_000_000
    """Decoded images larger than this are refused (decompression-bomb guard)."""

    max_archive_members: int = 200_000
    """Zip archives with more entries than this are refused."""

    num_threads: int = 0
    """Torch intra-op threads; 0 means one per available core."""


@lru_cache
def get_settings() -> Settings:
    """Return the process-wide settings, read once from the environment."""
    return Settings()
