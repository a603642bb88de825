"""Attacks: what the service can run, with each attack's norm and defaults."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from advguard.api.deps import require_read
from advguard.api.schemas import AttackInfoOut
from advguard.attacks import ATTACKS, attack_defaults, attack_summary

router = APIRouter(prefix="/attacks", tags=["attacks"])


@router.get("", response_model=list[AttackInfoOut], dependencies=[Depends(require_read)])
def list_attacks() -> list[AttackInfoOut]:
    """Every registered attack (the names jobs and ``/attack`` take)."""
    return [
        AttackInfoOut(
            name=name, norm=cls.norm, summary=attack_summary(cls), defaults=attack_defaults(cls)
        )
        for name, cls in ATTACKS.items()
    ]
