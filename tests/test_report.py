"""The handover report: one self-contained HTML file with every part's numbers and figures,
each saying how it was measured; and ``advguard report`` around it."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
import torch

from advguard import __version__
from advguard.cli import main
from advguard.evaluation.html_report import FIGURES
from advguard.jobs.steps import REPORT_FILE, ReportInputs, measure_report
from advguard.models import save_model


class Page(HTMLParser):
    """What a browser would fetch (every src and href) and each figure's key and caption."""

    def __init__(self) -> None:
        super().__init__()
        self.references: list[str] = []
        self.figures: dict[str, str] = {}
        self.tables: list[list[list[str]]] = []
        self._figure: str | None = None
        self._caption: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.references += [str(values[key]) for key in ("src", "href") if key in values]
        if tag == "figure":
            self._figure = values.get("data-figure")
        elif tag == "figcaption":
            self._caption = []
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "figcaption" and self._figure and self._caption is not None:
            self.figures[self._figure] = "".join(self._caption)
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        for collecting in (self._caption, self._cell):
            if collecting is not None:
                collecting.append(data)


@pytest.fixture(scope="module")
def report(trained_small, built, trained_detector, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    detector, _ = trained_detector
    inputs = ReportInputs(
        model=trained_small.model,
        model_name="small cnn",
        dataset=trained_small.test.sample(24, seed=5),
        dataset_name="bundled (test)",
        seed=5,
        detector=detector,
        detector_name="guard",
        adversarial=built.adversarial,
    )
    measured = measure_report(
        inputs, out, lambda *_: None, attacks=("fgsm", "autoattack", "autoattack-l2"),
        epsilons=(0, 8 / 255), l2_epsilons=(0, 0.5), defenses=("median",), adaptive_steps=5,
        unseen=("deepfool",),
    )  # fmt: skip
    text = (out / REPORT_FILE).read_text()
    page = Page()
    page.feed(text)
    return measured, text, page


def test_every_part_and_figure_is_in_one_file(report):
    measured, text, page = report
    assert set(page.figures) == set(FIGURES)
    # Self-contained: every image inline, nothing fetched from anywhere (offline, printable).
    assert page.references and all(
        ref.startswith("data:image/png;base64,") for ref in page.references
    )
    assert "<script" not in text and "<link" not in text and "@media print" in text
    for heading in ("Clean accuracy", "AutoAttack", "Robustness per attack",
                    "Preprocessing defenses, with and without BPDA", "Detector",
                    "Adaptive attack on the guard"):  # fmt: skip
        assert f"<h2>{heading}</h2>" in text
    assert measured.detection is not None and [row.attack for row in measured.detection.unseen] == [
        "deepfool"
    ]


def test_each_figure_says_how_it_was_measured(report):
    _, _, page = report
    versions = f"advguard {__version__}, PyTorch {torch.__version__}"
    for key in ("robustness", "defenses"):
        caption = page.figures[key]
        assert "24 test images of bundled (test)" in caption and "seed 5" in caption
        assert versions in caption and "Budgets: ε∞ 0, 8/255" in caption
    assert "autoattack (steps 100, n_queries 5000" in page.figures["robustness"]
    assert "ε₂ 0, 0.5" in page.figures["robustness"]
    assert "pgd (steps 10" in page.figures["defenses"]
    assert "5 steps" in page.figures["adaptive"] and "seed 5" in page.figures["adaptive"]
    assert versions in page.figures["detector_roc"]


def test_the_numbers_are_the_measured_ones(report):
    measured, _, page = report
    robustness = measured.robustness
    by_caption = {table[0][0]: table for table in page.tables if table}
    autoattack = next(t for t in page.tables if t and t[0] == ["budget", "robust accuracy"])
    linf = robustness.curve("none", "autoattack").accuracy[1]
    l2 = robustness.curve("none", "autoattack-l2", "l2").accuracy[1]
    assert autoattack[1:] == [["L∞ ε = 8/255", f"{100 * linf:.1f} %"],
                              ["L2 ε = 0.5", f"{100 * l2:.1f} %"]]  # fmt: skip
    assert measured.clean.accuracy == robustness.clean_accuracy["none"]
    clean_rows = by_caption["true \\ predicted"][1:]
    assert sum(int(count) for row in clean_rows for count in row[1:]) == 24
    defenses = next(t for t in page.tables if t and t[0][:2] == ["defense", "clean"])
    assert [row[0] for row in defenses[1:]] == ["none", "median", "median + BPDA"]
    assert measured.defenses is not None
    worst = measured.defenses.worst_case["median + BPDA"][1]
    assert defenses[3][-1] == f"{100 * worst:.1f} %"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--guard", "somewhere"], "--guard and --set go together"),
        (["--attacks", "fgsm,nope"], "unknown attack(s) nope"),
        (["--defenses", "blur"], "unknown defense 'blur'"),
        (["--attacks", "autoattack-l2", "--l2-eps", "0"], "need a non-zero L2 budget"),
    ],
)
def test_the_command_refuses_bad_requests_in_one_line(args, message, tmp_path, capsys):
    """Checked before the model or any data is loaded (the model path does not exist)."""
    assert main(["report", "--model", "nowhere", "--out", str(tmp_path), *args]) == 2
    printed = capsys.readouterr().err
    assert message in printed and printed.count("\n") == 1 and "Traceback" not in printed


def test_the_command_writes_the_report(trained_small, tmp_path, capsys):
    folder = save_model(trained_small.model, trained_small.spec, tmp_path / "model")
    assert main([
        "report", "--model", str(folder), "--data", "bundled", "--limit", "12",
        "--attacks", "fgsm,pgd", "--eps", "0,8/255", "--defenses", "jpeg",
        "--out", str(tmp_path / "report"),
    ]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert f"report: {tmp_path / 'report' / REPORT_FILE}" in printed
    page = Page()
    page.feed((tmp_path / "report" / REPORT_FILE).read_text())
    assert set(page.figures) == {"confusion", "robustness", "defenses"}
