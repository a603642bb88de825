"""Accuracy and attack success over attacks and budgets, as a table."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from torch import nn

from advguard.attacks import ATTACKS, create_attack
from advguard.data.dataset import ImageDataset
from advguard.evaluation.attack_run import run_attack
from advguard.models.training import predict_logits

DEMO_ATTACKS = ("fgsm", "bim", "pgd", "mim", "cw")
DEMO_EPSILONS = (2 / 255, 4 / 255, 8 / 255)


@dataclass
class RobustnessRow:
    """One attack at one budget (``eps`` is ``None`` for L2 attacks such as CW)."""

    attack: str
    eps: float | None
    clean_accuracy: float
    adversarial_accuracy: float
    success_rate: float
    mean_l2: float
    max_linf: float
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def json_ready(value: object) -> object:
    """``value`` with every NaN replaced by ``None``, so that the JSON is standard."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def format_eps(eps: float | None) -> str:
    """``8/255`` style for budgets on the 8-bit grid, else a decimal; ``L2`` for none."""
    if eps is None:
        return "L2"
    steps = eps * 255
    return f"{round(steps)}/255" if abs(steps - round(steps)) < 1e-6 else f"{eps:.4g}"


def robustness_table(
    model: nn.Module,
    dataset: ImageDataset,
    attacks: Sequence[str] = DEMO_ATTACKS,
    epsilons: Sequence[float] = DEMO_EPSILONS,
    *,
    batch_size: int = 128,
    progress: Callable[[int, int], None] | None = None,
    show_progress: bool = True,
) -> list[RobustnessRow]:
    """Attack ``dataset`` with each attack at each ε (L2 attacks once, at their defaults)."""
    runs = [
        (name, eps)
        for name in attacks
        for eps in ([None] if ATTACKS[name].norm == "l2" else epsilons)
    ]
    predicted_before = predict_logits(model, dataset.images).argmax(1)
    rows = []
    for index, (name, eps) in enumerate(runs):
        attack = create_attack(name, model) if eps is None else create_attack(name, model, eps=eps)
        outcome = run_attack(
            model,
            attack,
            dataset,
            batch_size=batch_size,
            predicted_before=predicted_before,
            show_progress=show_progress,
        )
        successful = outcome.success & outcome.clean_correct
        rows.append(
            RobustnessRow(
                attack=name,
                eps=eps,
                clean_accuracy=outcome.clean_accuracy,
                adversarial_accuracy=outcome.adversarial_accuracy,
                success_rate=outcome.success_rate,
                mean_l2=float(outcome.l2[successful].mean()) if successful.any() else float("nan"),
                max_linf=float(outcome.linf.max()),
                seconds=outcome.seconds,
            )
        )
        if progress is not None:
            progress(index + 1, len(runs))
    return rows


def format_table(rows: Sequence[RobustnessRow]) -> str:
    """A fixed-width text table of robustness rows for the terminal and Markdown."""
    header = "| attack | ε | clean acc | adv acc | success | mean L2 (succ.) | max L∞ | seconds |"
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.attack} | {format_eps(row.eps)} | {row.clean_accuracy:.3f} | "
            f"{row.adversarial_accuracy:.3f} | {row.success_rate:.3f} | {row.mean_l2:.3f} | "
            f"{row.max_linf:.4f} | {'–' if row.seconds != row.seconds else f'{row.seconds:.1f}'} |"
        )
    return "\n".join(lines)
