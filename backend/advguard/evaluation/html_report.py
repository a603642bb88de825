"""One self-contained HTML file to hand over with a model: clean accuracy, AutoAttack and
per-attack robustness, preprocessing defenses with and without BPDA, and, when a detector
is given, its report (unseen attacks included) and the adaptive table.

Figures are inlined as PNG data, styles sit in the page, nothing is fetched: the file opens
offline in any browser and prints to PDF with no figure or table split across pages. Every
figure says how it was measured (attacks and their settings, budgets, images, seed, versions).
"""

from __future__ import annotations

import base64
import html
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import torch

from advguard import __version__
from advguard.attacks import ATTACKS, attack_defaults, format_eps
from advguard.attacks.autoattack import VERSION as AUTOATTACK_VERSION
from advguard.evaluation.adaptive import ProtectedAccuracy
from advguard.evaluation.detection_report import DetectionReport, ReportRow, UnseenAttackRow
from advguard.evaluation.metrics import ClassifierMetrics
from advguard.evaluation.robustness import (
    NO_DEFENSE,
    NORMS,
    ROBUSTNESS_METHOD,
    RobustnessResult,
    budget_value,
    format_budget,
)

AUTOATTACK_BY_NORM = {"linf": "autoattack", "l2": "autoattack-l2"}
NORM_NAMES = {"linf": "L∞", "l2": "L2"}
FIGURES = ("confusion", "robustness", "defenses", "detector_roc", "detector_confusion",
           "detector_examples", "adaptive")  # fmt: skip
"""Every figure a full report has (with a detector), by its ``data-figure`` key."""
_SHOWN_SETTINGS = ("steps", "n_restarts", "n_queries", "max_queries", "n_target_classes", "c",
                   "loss", "decay", "random_start", "overshoot")  # fmt: skip
"""The settings a caption names (the budget and its step rule are given beside them)."""


@dataclass
class ModelReport:
    """What the handover report says, measured by :func:`advguard.jobs.steps.measure_report`.

    ``figures`` maps a figure's key (one of :data:`FIGURES`) to a PNG file; absent keys
    are left out of the page.
    """

    model: str
    dataset: str
    seed: int
    clean: ClassifierMetrics
    robustness: RobustnessResult
    defenses: RobustnessResult | None = None
    detector: str | None = None
    detection: DetectionReport | None = None
    adaptive: list[ProtectedAccuracy] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


def versions() -> str:
    """The software that measured the report."""
    return (
        f"advguard {__version__}, PyTorch {torch.__version__}, Python {platform.python_version()}"
    )


def attack_settings(names: Sequence[str]) -> str:
    """``pgd (steps 10), cw (steps 100, c 1.0)``: each attack with its main settings."""
    described = []
    for name in names:
        defaults = attack_defaults(ATTACKS[name])
        shown = [f"{key} {defaults[key]}" for key in _SHOWN_SETTINGS if key in defaults]
        described.append(f"{name} ({', '.join(shown)})" if shown else name)
    return ", ".join(described)


def grid_text(result: RobustnessResult) -> str:
    """The budgets a result was measured at."""
    parts = [f"ε∞ {', '.join(budget_value(eps, 'linf') for eps in result.epsilons)}"]
    if result.l2_epsilons:
        parts.append(f"ε₂ {', '.join(budget_value(eps, 'l2') for eps in result.l2_epsilons)}")
    return "; ".join(parts)


def provenance(result: RobustnessResult, dataset: str, seed: int) -> str:
    """How a robustness figure or table was measured, in one sentence."""
    return (
        f"Attacks: {attack_settings(result.attacks)}; step-size attacks use α = 2.5·ε/steps. "
        f"Budgets: {grid_text(result)}. {result.images} test images of {dataset} "
        f"(a random sample, seed {seed}). {versions()}."
    )


def _e(value: object) -> str:
    return html.escape(str(value))


def _percent(value: float | None) -> str:
    return "–" if value is None or value != value else f"{100 * value:.1f} %"


def _table(caption: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f'<th scope="col">{_e(cell)}</th>' for cell in header)
    body = "".join(
        f'<tr><th scope="row">{_e(row[0])}</th>'
        + "".join(f"<td>{_e(cell)}</td>" for cell in row[1:])
        + "</tr>"
        for row in rows
    )
    return (
        f"<table><caption>{_e(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _figure(report: ModelReport, key: str, alt: str, caption: str) -> str:
    path = report.figures.get(key)
    if path is None or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (
        f'<figure data-figure="{_e(key)}"><img src="data:image/png;base64,{data}" '
        f'alt="{_e(alt)}"><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _robustness_tables(result: RobustnessResult, defense: str) -> list[str]:
    tables = []
    for norm in NORMS:
        attacks = result.attacks_on(norm)
        if not attacks:
            continue
        epsilons, worst_case = result.grid(norm)
        header = ["attack", *(format_budget(eps, norm) for eps in epsilons)]
        rows = [
            [attack, *map(_percent, result.curve(defense, attack, norm).accuracy)]
            for attack in attacks
        ]
        rows.append(["worst case", *map(_percent, worst_case[defense])])
        caption = f"Accuracy under each {NORM_NAMES[norm]} attack: {defense}"
        tables.append(_table(caption, header, rows))
    return tables


def _autoattack_section(report: ModelReport) -> str:
    result = report.robustness
    rows = []
    for norm in NORMS:
        name = AUTOATTACK_BY_NORM[norm]
        if name not in result.attacks_on(norm):
            continue
        epsilons, _ = result.grid(norm)
        accuracy = result.curve(NO_DEFENSE, name, norm).accuracy
        rows += [
            [f"{NORM_NAMES[norm]} ε = {budget_value(eps, norm)}", _percent(a)]
            for eps, a in zip(epsilons, accuracy, strict=True)
            if eps > 0
        ]
    if not rows:
        return (
            "<p>AutoAttack was not among the attacks of this report (name <code>autoattack"
            "</code> and <code>autoattack-l2</code> to measure it).</p>"
        )
    caption = (
        f"AutoAttack robust accuracy ({AUTOATTACK_VERSION}; APGD, APGD-T and FAB-T with "
        f"{attack_defaults(ATTACKS['autoattack'])['steps']} steps, Square with "
        f"{attack_defaults(ATTACKS['autoattack'])['n_queries']} queries, each on the images "
        f"the previous left robust), {result.images} images"
    )
    return _table(caption, ["budget", "robust accuracy"], rows)


def _attack_table(caption: str, rows: Sequence[ReportRow | UnseenAttackRow]) -> str:
    """The detector on each attack: how many images, how many broke, AUROC, rejections."""
    return _table(
        caption,
        ["attack", "ε", "images", "successful", "AUROC", "AUROC (successful)", "rejected"],
        [
            [row.attack, row.eps, str(row.images), str(row.successful), f"{row.auroc:.3f}",
             f"{row.auroc_successful:.3f}", _percent(row.tpr)]
            for row in rows
        ],
    )  # fmt: skip


def _detection_section(report: ModelReport) -> str:
    detection = report.detection
    if detection is None:
        return "<p>No detector was given: run the report with a guard to include its report.</p>"
    summary = _table(
        f"Detector {report.detector or ''}: threshold and rejections",
        ["measure", "value"],
        [
            ["threshold (detector score)", f"{detection.threshold:.4f}"],
            ["clean test scans rejected", _percent(detection.clean_false_rejection)],
            ["attack named correctly (successful attacks)", _percent(detection.naming_accuracy)],
            ["clean scans classified correctly and accepted",
             _percent(detection.guard_accuracy_clean)],
        ],
    )  # fmt: skip
    seen = _attack_table(
        f"Attacks it trained on, {detection.clean_images} clean test images against each",
        detection.rows,
    )
    unseen = _attack_table(
        "Attacks it never trained on (run on clean test scans, 8-bit)", detection.unseen
    )
    how = (
        f"Detector scores on the test split of the adversarial set it trained on "
        f"({', '.join(detection.attack_names)} against {detection.clean_images} clean test "
        f"scans); unseen attacks at their default settings. {versions()}."
    )
    return "".join(
        [
            summary,
            seen,
            unseen if detection.unseen else "<p>No unseen attack was measured.</p>",
            _figure(report, "detector_roc", "ROC curves of the detector per attack",
                    f"ROC curves against clean test scans. {how}"),
            _figure(report, "detector_confusion", "What the guard answered per input kind",
                    f"The guard's answers (accepted as clean, or the attack it named). {how}"),
            _figure(report, "detector_examples", "Example attacked scans and perturbations",
                    "Per attack, one successful test image: clean, attacked, perturbation ×10."),
        ]
    )  # fmt: skip


def _adaptive_section(report: ModelReport) -> str:
    if not report.adaptive:
        return "<p>No detector was given: the adaptive attack was not run.</p>"
    first = report.adaptive[0]
    rows = [
        [row.setting, format_eps(row.eps), str(row.steps), _percent(row.protected_accuracy),
         _percent(row.rejection_rate), _percent(row.accuracy), _percent(row.attack_success_rate)]
        for row in report.adaptive
    ]  # fmt: skip
    how = (
        f"L∞ PGD that knows the detector (adaptive) or ignores it: {first.steps} steps of "
        f"ε/4, results rounded to 8 bits; {first.images} test images (seed {report.seed}). "
        f"{versions()}."
    )
    return _table(
        "Protected accuracy (rejected, or still classified correctly) under the adaptive attack",
        ["setting", "ε", "steps", "protected", "rejected", "accuracy", "attack success"],
        rows,
    ) + _figure(report, "adaptive", "Protected accuracy against ε", how)


STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24;
       max-width: 62rem; margin: 2rem auto; padding: 0 1.25rem; }
h1 { font-size: 1.6rem; margin-bottom: .25rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
border-bottom: 1px solid #d0d7de; padding-bottom: .25rem; }
table { border-collapse: collapse; margin: 1rem 0; font-variant-numeric: tabular-nums;
        min-width: 55%; }
caption { text-align: left; font-weight: 600; padding-bottom: .25rem; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: right; }
th[scope=row], thead th:first-child { text-align: left; } thead th { background: #f6f8fa; }
figure { margin: 1rem 0; } figure img { max-width: min(100%, 52rem); height: auto; }
figcaption, .muted { color: #57606a; font-size: .85rem; }
.cards { display: flex; flex-wrap: wrap; gap: .75rem; padding: 0; }
.cards div { border: 1px solid #d0d7de; border-radius: 6px; padding: .5rem .9rem; }
.cards dt { font-size: .8rem; color: #57606a; } .cards dd { margin: 0; font-size: 1.3rem; }
@media print { body { margin: 0; max-width: none; font-size: 11pt; }
  figure, table, .cards div { break-inside: avoid; } h2 { break-after: avoid; } }
@page { margin: 1.5cm; }
"""


def _cards(report: ModelReport) -> str:
    cards = [("Clean accuracy", _percent(report.clean.accuracy))]
    for norm in NORMS:
        name = AUTOATTACK_BY_NORM[norm]
        if name in report.robustness.attacks_on(norm):
            epsilons, _ = report.robustness.grid(norm)
            value = report.robustness.curve(NO_DEFENSE, name, norm).accuracy[-1]
            cards.append((f"AutoAttack {format_budget(epsilons[-1], norm)}", _percent(value)))
    if report.detection is not None:
        cards.append(("Clean scans rejected", _percent(report.detection.clean_false_rejection)))
    items = "".join(f"<div><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>" for k, v in cards)
    return f'<dl class="cards">{items}</dl>'


def render_html(report: ModelReport) -> str:
    """The whole report as one HTML document."""
    result = report.robustness
    how = provenance(result, report.dataset, report.seed)
    clean = report.clean
    confusion = _table(
        "Clean test images: true class (rows) against predicted (columns)",
        ["true \\ predicted", *clean.class_names],
        [[name, *map(str, row)] for name, row in zip(clean.class_names, clean.confusion_matrix,
                                                    strict=True)],
    )  # fmt: skip
    sections = [
        f"<h1>Robustness report: {_e(report.model)}</h1>",
        f'<p class="muted">{_e(report.dataset)}, {result.images} test images (seed '
        f"{report.seed}); classes {_e(', '.join(clean.class_names))}. Created "
        f"{report.created:%Y-%m-%d %H:%M} UTC with {_e(versions())}.</p>",
        _cards(report),
        "<h2>Clean accuracy</h2>",
        f"<p>{_percent(clean.accuracy)} of the {result.images} test images.</p>",
        confusion,
        _figure(report, "confusion", "Confusion matrix on clean test images",
                f"Clean test images, no attack. {versions()}."),
        "<h2>AutoAttack</h2>",
        _autoattack_section(report),
        "<h2>Robustness per attack</h2>",
        f'<p class="muted">{_e(ROBUSTNESS_METHOD)}</p>',
        *_robustness_tables(result, NO_DEFENSE),
        _figure(report, "robustness", "Accuracy against the budget per attack", how),
        "<h2>Preprocessing defenses, with and without BPDA</h2>",
    ]  # fmt: skip
    defenses = report.defenses
    if defenses is not None and len(defenses.defenses) > 1:
        rows = [
            [defense, _percent(defenses.clean_accuracy[defense]),
             *map(_percent, defenses.worst_case[defense])]
            for defense in defenses.defenses
        ]  # fmt: skip
        sections += [
            _table(
                f"Worst-case accuracy under {', '.join(defenses.attacks)} per defense "
                "(+ BPDA: attacked through a straight-through gradient)",
                ["defense", "clean", *(format_budget(eps, "linf") for eps in defenses.epsilons)],
                rows,
            ),
            _figure(report, "defenses", "Accuracy against ε behind each defense",
                    provenance(defenses, report.dataset, report.seed)),
        ]  # fmt: skip
    else:
        sections.append("<p>No preprocessing defense was measured.</p>")
    sections += [
        "<h2>Detector</h2>",
        _detection_section(report),
        "<h2>Adaptive attack on the guard</h2>",
        _adaptive_section(report),
    ]
    body = "\n".join(section for section in sections if section)
    title = f"Robustness report: {report.model}"
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def write_html_report(report: ModelReport, path: str | Path) -> Path:
    """Write :func:`render_html` to ``path`` (its folder created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report), encoding="utf-8")
    return path
