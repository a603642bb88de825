"""Robustness over a budget grid: accuracy under each attack at each ε, the worst case over
attacks, with and without preprocessing defenses (attacked plainly and through BPDA)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt
from torch import Tensor, nn

from advguard.attacks import (
    ATTACKS,
    HopSkipJump,
    attack_defaults,
    create_budget_attack,
    format_eps,
    run_attack,
)
from advguard.data.dataset import ImageDataset
from advguard.defenses.preprocessing import PREPROCESSORS, PreprocessingDefense
from advguard.detection.builder import DEFAULT_EPSILONS, DETECTOR_ATTACKS
from advguard.evaluation.metrics import Finite
from advguard.models.training import predict_labels

DEMO_ATTACKS = DETECTOR_ATTACKS
DEMO_EPSILONS = DEFAULT_EPSILONS
ROBUSTNESS_ATTACKS = ("fgsm", "bim", "pgd", "mim", "apgd", "cw", "deepfool")
"""Square is left out by default: as a query-only attack it needs ~1000 forward passes per
image and budget, which is minutes per budget on a CPU. Name it to include it."""
ROBUSTNESS_EPSILONS = tuple(level / 255 for level in (0, 1, 2, 4, 8, 16))
ROBUSTNESS_L2_EPSILONS = (0.0, 0.25, 0.5, 1.0)
"""The L2 radii (pixel scale) L2 attacks are judged at: RobustBench's 0.5 and around it."""
NORMS = ("linf", "l2")
ROBUSTNESS_METHOD = (
    "Step-size attacks use α = 2.5·ε/steps. L∞ attacks run at each ε∞, L2 attacks "
    "(pgd-l2, apgd-l2, autoattack-l2, …) at each L2 radius ε₂. Minimal-perturbation "
    "attacks (CW, DeepFool, HopSkipJump) run once: an image counts as broken at a budget "
    "when they fooled the model within it (on both grids). The worst case is per image: "
    "correct under every attack of that grid."
)
NO_DEFENSE = "none"

ProgressCallback = Callable[[str, int, int], None]


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
    """NaN where the row was read back from a set (not timed)."""

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


# --- accuracy over an ε grid ---------------------------------------------------------------


@dataclass(frozen=True)
class DefenseSetting:
    """The model under test: the plain classifier (``name == "none"``) or a preprocessing
    defense in front of it, attacked through its true gradient or with BPDA."""

    name: str = NO_DEFENSE
    bpda: bool = False
    params: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        if self.name != NO_DEFENSE and self.name not in PREPROCESSORS:
            known = ", ".join([NO_DEFENSE, *PREPROCESSORS])
            raise ValueError(f"unknown defense {self.name!r}; known: {known}")
        if self.name == NO_DEFENSE and (self.bpda or self.params):
            raise ValueError("the undefended model takes neither BPDA nor parameters")

    @property
    def label(self) -> str:
        """``none``, ``jpeg`` or ``jpeg + BPDA``: the name used in tables and plots."""
        return f"{self.name} + BPDA" if self.bpda else self.name

    def wrap(self, classifier: nn.Module) -> nn.Module:
        """The classifier with this defense in front of it (itself for ``none``)."""
        if self.name == NO_DEFENSE:
            return classifier
        return PreprocessingDefense(classifier, self.name, bpda=self.bpda, **dict(self.params))


def defense_settings(names: Sequence[str]) -> list[DefenseSetting]:
    """The undefended model, then each named preprocessing attacked plainly and with BPDA,
    so gradient masking shows as the gap between the two."""
    settings = [DefenseSetting()]
    for name in names:
        if name != NO_DEFENSE:
            settings += [DefenseSetting(name), DefenseSetting(name, bpda=True)]
    return settings


@dataclass
class RobustnessCurve:
    """Accuracy of one model (defense setting) under one attack, one value per ε of the
    grid of ``norm`` (``"linf"``: :attr:`RobustnessResult.epsilons`; ``"l2"``:
    :attr:`RobustnessResult.l2_epsilons`)."""

    defense: str
    attack: str
    accuracy: list[float]
    seconds: Finite
    norm: str = "linf"


@dataclass
class QueryBudgetCurve:
    """A decision-based attack (HopSkipJump) given at most ``queries`` label queries per
    image: the model's accuracy at each ε of the grid (broken when the attack had an
    adversarial image within that L∞ budget by then)."""

    defense: str
    attack: str
    queries: int
    accuracy: list[float]


QUERY_BUDGETS = (100, 250, 500, 1000, 2500, 5000, 10000)
"""The query budgets a decision-based attack is reported at (up to its own maximum)."""


@dataclass
class RobustnessResult:
    """Accuracy under attack over an L∞ and an L2 grid, per defense setting and attack.

    ``worst_case[defense][i]`` is the share of images that every L∞ attack (and every
    minimal-perturbation one) left correctly classified at ``epsilons[i]`` (per image, not
    the minimum of the averages); ``worst_case_l2`` is the same over the L2 attacks at
    ``l2_epsilons``. The L2 grid is empty when no L2 attack was named.
    """

    epsilons: list[Finite]
    images: int
    attacks: list[str]
    defenses: list[str]
    clean_accuracy: dict[str, float]
    curves: list[RobustnessCurve]
    worst_case: dict[str, list[float]]
    seconds: Finite
    attack_params: dict[str, dict[str, object]] = field(default_factory=dict)
    query_budgets: list[QueryBudgetCurve] = field(default_factory=list)
    """Accuracy under each decision-based attack against its query budget."""
    l2_epsilons: list[Finite] = field(default_factory=list)
    worst_case_l2: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def curve(self, defense: str, attack: str, norm: str = "linf") -> RobustnessCurve:
        """The curve for one defense setting (by label) and attack on the ``norm`` grid."""
        for curve in self.curves:
            if curve.defense == defense and curve.attack == attack and curve.norm == norm:
                return curve
        raise KeyError((defense, attack, norm))

    def attacks_on(self, norm: str) -> list[str]:
        """The attacks with a curve on the ``norm`` grid, in the order they were named."""
        measured = {curve.attack for curve in self.curves if curve.norm == norm}
        return [attack for attack in self.attacks if attack in measured]

    def grid(self, norm: str) -> tuple[list[Finite], dict[str, list[float]]]:
        """The budgets and the per-defense worst case of the ``norm`` grid."""
        if norm == "l2":
            return self.l2_epsilons, self.worst_case_l2
        return self.epsilons, self.worst_case

    def markdown(self) -> str:
        """Per defense setting, a table per norm: attacks as rows, budgets as columns."""
        sections = []
        for defense in self.defenses:
            lines = [f"### {defense} (clean accuracy {self.clean_accuracy[defense]:.3f})"]
            for norm in NORMS:
                epsilons, worst_case = self.grid(norm)
                attacks = self.attacks_on(norm)
                if not attacks:
                    continue
                budgets = [format_budget(eps, norm) for eps in epsilons]
                lines += [
                    "",
                    "| attack | " + " | ".join(budgets) + " | seconds |",
                    "|---|" + "---|" * (len(budgets) + 1),
                ]
                for attack in attacks:
                    curve = self.curve(defense, attack, norm)
                    values = " | ".join(f"{a:.3f}" for a in curve.accuracy)
                    lines.append(f"| {attack} | {values} | {curve.seconds:.0f} |")
                worst = " | ".join(f"**{a:.3f}**" for a in worst_case[defense])
                lines.append(f"| **worst case** | {worst} | |")
            budgets = [format_budget(eps, "linf") for eps in self.epsilons]
            budgeted = [c for c in self.query_budgets if c.defense == defense]
            if budgeted:
                lines += [
                    "",
                    "Decision-based attacks (top-1 labels only) by query budget per image:",
                    "",
                    "| attack | queries | " + " | ".join(budgets) + " |",
                    "|---|---|" + "---|" * len(budgets),
                ]
                for budget in budgeted:
                    values = " | ".join(f"{a:.3f}" for a in budget.accuracy)
                    lines.append(f"| {budget.attack} | ≤ {budget.queries} | {values} |")
            sections.append("\n".join(lines))
        return "\n\n".join(sections)


def budget_value(eps: float, norm: str) -> str:
    """A budget's value as written: ``8/255`` (L∞) or ``0.5`` (an L2 radius)."""
    if eps == 0:
        return "0"
    return format_eps(eps) if norm == "linf" else f"{eps:g}"


def format_budget(eps: float, norm: str) -> str:
    """A budget as a column heading: ``ε∞=8/255`` or ``ε₂=0.5``."""
    return f"ε{'∞' if norm == 'linf' else '₂'}={budget_value(eps, norm)}"


MAX_L2_EPS = 100.0
"""The largest L2 radius accepted (pixel scale); one larger was almost surely meant in
0-255 units."""


def check_robustness_request(
    attacks: Sequence[str], epsilons: Sequence[float], l2_epsilons: Sequence[float] = ()
) -> None:
    """Raise ``ValueError`` naming what is wrong with these attacks or budgets (callers
    check before loading data)."""
    if not attacks:
        raise ValueError("name at least one attack")
    unknown = [name for name in attacks if name not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack(s) {', '.join(unknown)}; known: {', '.join(ATTACKS)}")
    if not epsilons or any(not 0 <= eps <= 1 for eps in epsilons):
        raise ValueError("budgets must be between 0 and 1 (pixel scale, e.g. 8/255)")
    if any(not 0 <= eps <= MAX_L2_EPS for eps in l2_epsilons):
        raise ValueError(f"L2 budgets must be between 0 and {MAX_L2_EPS:g} (pixel scale, e.g. 0.5)")
    bounded = [name for name in attacks if ATTACKS[name].norm == "l2" and not ATTACKS[name].minimal]
    if bounded and not any(eps > 0 for eps in l2_epsilons):
        raise ValueError(f"{', '.join(bounded)} need a non-zero L2 budget (e.g. 0.5)")


def evaluate_robustness(
    classifier: nn.Module,
    dataset: ImageDataset,
    attacks: Sequence[str] = ROBUSTNESS_ATTACKS,
    epsilons: Sequence[float] = ROBUSTNESS_EPSILONS,
    defenses: Sequence[DefenseSetting] = (DefenseSetting(),),
    *,
    l2_epsilons: Sequence[float] = ROBUSTNESS_L2_EPSILONS,
    batch_size: int = 128,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> RobustnessResult:
    """Accuracy of ``classifier`` (behind each defense setting) under each attack at each ε.

    An attack bounded in L∞ runs once per non-zero ε of ``epsilons``; one bounded in L2
    (``pgd-l2``, ``autoattack-l2``, …) once per non-zero radius of ``l2_epsilons``. A
    minimal-perturbation attack (CW, DeepFool, HopSkipJump) runs once: an image counts as
    broken at a budget when the attack fooled the model within it, on both grids. The L2
    grid is reported only when an L2 attack is named. ``progress(stage, done, total)``
    counts attacked images.
    """
    check_robustness_request(attacks, epsilons, l2_epsilons)
    kinds = {name: ATTACKS[name] for name in attacks}
    grids = {"linf": sorted(set(float(eps) for eps in epsilons)), "l2": []}
    if any(kind.norm == "l2" for kind in kinds.values()):
        grids["l2"] = sorted(set(float(eps) for eps in l2_epsilons))
    runs_per_defense = sum(
        1 if kind.minimal else sum(eps > 0 for eps in grids[kind.norm]) for kind in kinds.values()
    )
    total = len(defenses) * runs_per_defense * len(dataset)
    done = 0
    started = time.perf_counter()
    labels = dataset.labels
    curves: list[RobustnessCurve] = []
    query_budgets: list[QueryBudgetCurve] = []
    clean_accuracy: dict[str, float] = {}
    worst_cases: dict[str, dict[str, list[float]]] = {"linf": {}, "l2": {}}
    for setting in defenses:
        model = setting.wrap(classifier)
        clean_predictions = predict_labels(model, dataset.images)
        clean_correct = clean_predictions == labels
        clean_accuracy[setting.label] = float(clean_correct.float().mean())
        # Per grid, budgets × images: correct under every attack so far.
        survived_all = {norm: clean_correct.repeat(len(grid), 1) for norm, grid in grids.items()}
        for name, kind in kinds.items():
            attack_started = time.perf_counter()
            judged = list(NORMS) if kind.minimal else [kind.norm]
            correct = {norm: clean_correct.repeat(len(grids[norm]), 1) for norm in judged}
            budgets = [None] if kind.minimal else [eps for eps in grids[kind.norm] if eps > 0]
            for eps in budgets:
                stage = f"{setting.label}: {name}" + (
                    "" if eps is None else f" {format_budget(eps, kind.norm)}"
                )
                attack = create_budget_attack(name, model, eps, kind.norm)
                offset = done

                def report(
                    images_done: int, _total: int, stage: str = stage, offset: int = offset
                ) -> None:
                    if progress is not None:
                        progress(stage, offset + images_done, total)

                outcome = run_attack(
                    model,
                    attack,
                    dataset,
                    batch_size=batch_size,
                    predicted_before=clean_predictions,
                    progress=report,
                    show_progress=show_progress,
                )
                fooled = outcome.predicted_after != labels
                done += len(dataset)
                if eps is None:
                    # Broken at a budget when fooled within it (8-bit tolerance).
                    sizes = {"linf": outcome.linf, "l2": outcome.l2}
                    for norm in judged:
                        for row, budget in enumerate(grids[norm]):
                            correct[norm][row] &= ~(fooled & (sizes[norm] <= budget + 1e-6))
                else:
                    correct[kind.norm][grids[kind.norm].index(eps)] &= ~fooled
                if isinstance(attack, HopSkipJump):
                    query_budgets += query_budget_curves(
                        attack, setting.label, grids["linf"], clean_correct
                    )
            for norm in judged:
                if not grids[norm]:
                    continue
                curves.append(
                    RobustnessCurve(
                        defense=setting.label,
                        attack=name,
                        accuracy=[float(row.float().mean()) for row in correct[norm]],
                        seconds=time.perf_counter() - attack_started,
                        norm=norm,
                    )
                )
                survived_all[norm] &= correct[norm]
        for norm, survived in survived_all.items():
            if grids[norm]:
                worst_cases[norm][setting.label] = [float(row.float().mean()) for row in survived]
    return RobustnessResult(
        epsilons=grids["linf"],
        images=len(dataset),
        attacks=list(attacks),
        defenses=[setting.label for setting in defenses],
        clean_accuracy=clean_accuracy,
        curves=curves,
        worst_case=worst_cases["linf"],
        seconds=time.perf_counter() - started,
        attack_params={
            name: {"alpha": "2.5·ε/steps"} if "alpha" in attack_defaults(kind) else {}
            for name, kind in kinds.items()
        },
        query_budgets=query_budgets,
        l2_epsilons=grids["l2"],
        worst_case_l2=worst_cases["l2"],
    )


def query_budget_curves(
    attack: HopSkipJump, defense: str, grid: Sequence[float], clean_correct: Tensor
) -> list[QueryBudgetCurve]:
    """Accuracy over ``grid`` had ``attack`` (just run over the whole dataset) been stopped
    at each of :data:`QUERY_BUDGETS` up to its own maximum, and at that maximum."""
    budgets = sorted({q for q in QUERY_BUDGETS if q < attack.max_queries} | {attack.max_queries})
    curves = []
    for budget in budgets:
        sizes = attack.linf_within_queries(budget)
        accuracy = [
            float((clean_correct & ~(sizes <= eps + 1e-6)).float().mean())
            if eps > 0
            else float(clean_correct.float().mean())
            for eps in grid
        ]
        curves.append(QueryBudgetCurve(defense, attack.name, budget, accuracy))
    return curves


def plot_robustness(result: RobustnessResult, path: str | Path) -> Path:
    """Accuracy against ε: a row of panels per norm measured, one panel per defense setting
    (a line per attack, the worst case in black), and, with several settings, a last panel
    with every setting's worst case side by side."""
    norms = [norm for norm in NORMS if result.attacks_on(norm)]
    columns = len(result.defenses) + (1 if len(result.defenses) > 1 else 0)
    figure, axes = plt.subplots(
        len(norms), columns, figsize=(4.2 * columns, 3.4 * len(norms)), squeeze=False
    )
    for row, norm in zip(axes, norms, strict=True):
        epsilons, worst_case = result.grid(norm)
        x = [eps * 255 if norm == "linf" else eps for eps in epsilons]
        for axis, defense in zip(row, result.defenses, strict=False):
            for attack in result.attacks_on(norm):
                accuracy = result.curve(defense, attack, norm).accuracy
                axis.plot(x, accuracy, marker="o", ms=3, label=attack)
            axis.plot(x, worst_case[defense], color="black", lw=2.2, label="worst case")
            clean = result.clean_accuracy[defense]
            axis.set_title(f"{defense} (clean {clean:.2f})", fontsize=10)
            axis.legend(fontsize=7)
        if len(result.defenses) > 1:
            summary = row[-1]
            for defense in result.defenses:
                style = "--" if defense.endswith("BPDA") else "-"
                summary.plot(x, worst_case[defense], style, marker="o", ms=3, label=defense)
            summary.set_title("worst case per defense", fontsize=10)
            summary.legend(fontsize=7)
        for axis in row:
            if norm == "linf":
                axis.set_xscale("symlog", linthresh=1)
            axis.set_xticks(
                x, [f"{eps:g}" if norm == "l2" else format_eps(eps) for eps in epsilons]
            )
            axis.tick_params(axis="x", labelsize=7)
            axis.set_ylim(-0.02, 1.02)
            axis.set_xlabel("ε (L∞)" if norm == "linf" else "ε (L2)")
            axis.grid(alpha=0.3)
        row[0].set_ylabel("accuracy under attack")
    figure.suptitle(f"Robustness on {result.images} images")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_robustness_report(result: RobustnessResult, out: str | Path) -> dict[str, str]:
    """Write ``robustness.json``, ``robustness.md`` and ``robustness.png`` into ``out``;
    return the file names by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "robustness.json").write_text(json.dumps(json_ready(result.to_dict()), indent=2))
    (out / "robustness.md").write_text(
        f"# Robustness: accuracy under attack over ε\n\n{result.images} images; "
        f"{result.seconds:.0f} s. {ROBUSTNESS_METHOD}\n\n"
        + result.markdown()
        + "\n\n![robustness](robustness.png)\n"
    )
    plot_robustness(result, out / "robustness.png")
    return {"json": "robustness.json", "markdown": "robustness.md", "plot": "robustness.png"}


@dataclass
class ModelRobustness:
    """One model's clean accuracy and its worst-case accuracy per ε."""

    name: str
    clean_accuracy: float
    accuracy: list[float]


@dataclass
class ModelComparison:
    """Several models (e.g. standard and adversarially trained) under the same attacks."""

    epsilons: list[Finite]
    attacks: list[str]
    images: int
    models: list[ModelRobustness]
    seconds: Finite

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def markdown(self) -> str:
        """Models as rows: clean accuracy, then accuracy under the worst attack per ε."""
        budgets = [eps for eps in self.epsilons if eps > 0]
        lines = [
            "| model | clean | " + " | ".join(f"ε={format_eps(eps)}" for eps in budgets) + " |",
            "|---|---|" + "---|" * len(budgets),
        ]
        for model in self.models:
            values = [a for eps, a in zip(self.epsilons, model.accuracy, strict=True) if eps > 0]
            lines.append(
                f"| {model.name} | {model.clean_accuracy:.3f} | "
                + " | ".join(f"{a:.3f}" for a in values)
                + " |"
            )
        return "\n".join(lines)


COMPARISON_ATTACKS = ("pgd", "apgd")
"""PGD and APGD-CE: the second adapts its step size, so a model that only resists PGD's
fixed steps still shows up as breakable."""


def compare_models(
    models: dict[str, nn.Module],
    dataset: ImageDataset,
    epsilons: Sequence[float] = (0, 2 / 255, 4 / 255, 8 / 255),
    attacks: Sequence[str] = COMPARISON_ATTACKS,
    *,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> ModelComparison:
    """Clean accuracy and per-image worst-case accuracy under ``attacks`` for each model."""
    started = time.perf_counter()
    rows = []
    for index, (name, model) in enumerate(models.items()):

        def report(stage: str, done: int, total: int, name: str = name, index: int = index) -> None:
            if progress is not None:
                progress(f"{name}: {stage}", index * total + done, len(models) * total)

        result = evaluate_robustness(
            model, dataset, attacks, epsilons, progress=report, show_progress=show_progress
        )
        rows.append(
            ModelRobustness(name, result.clean_accuracy[NO_DEFENSE], result.worst_case[NO_DEFENSE])
        )
    return ModelComparison(
        epsilons=sorted(set(float(eps) for eps in epsilons)),
        attacks=list(attacks),
        images=len(dataset),
        models=rows,
        seconds=time.perf_counter() - started,
    )
