"""The web app end to end in a real headless Chromium, against the real stack.

The API runs as its own process (``advguard serve``, serving ``frontend/dist``) beside the
session's Redis and Celery worker. Everything happens through the UI, as a user would do
it, at 1280 px: upload a small dataset, train a classifier, build an adversarial set,
train, rename and evaluate a detector, then the live test calls a blank image unlike the
training scans, passes a clean image and catches an attacked one with the attack named, and
the robustness page draws accuracy against ε. Along the way: records are picked by name,
progress bars only move forward and move while a job runs, no page is wider than the window
and no chart label is cut off or covered. Then every page the journey left is opened again
by its address at a phone's width (420 px), where the same results must show and fit. A
screenshot of every page at each width goes to ``tests/artifacts/screenshots``.

The browser is Debian's ``chromium`` (``scripts/system-deps.sh`` installs it), driven by
Playwright; no browser is ever downloaded. The app must be built first
(``cd frontend && npm ci && npm run build``; ``make test`` does it).
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT, SERVICE_ENV
from PIL import Image
from test_query_watch import attack_stream

REPOSITORY = Path(__file__).resolve().parents[2]
FRONTEND_DIST = REPOSITORY / "frontend" / "dist"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPOSITORY / "tests" / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
JOB_TIMEOUT_MS = 240_000
WIDE = 1280
"""The desktop width; screenshots at other widths carry theirs in their name."""
PHONE = 420
CLASSES = ("stripes", "checks", "blobs")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Debian's chromium is not installed (scripts/system-deps.sh installs it as root)",
)


# --- data ------------------------------------------------------------------------------


def pattern(kind: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """A grey ``size``×``size`` image: one of three faint textures under noise, so that a
    small CNN learns the classes in seconds and an 8/255 attack still fools it."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    if kind == "stripes":
        signal = np.sin(y * rng.uniform(0.7, 0.9) + rng.uniform(0, 2 * np.pi))
    elif kind == "checks":
        period = int(rng.integers(3, 5))
        signal = 2.0 * (((x // period) + (y // period)) % 2) - 1
    else:
        cx, cy, radius = rng.uniform(12, 20), rng.uniform(12, 20), rng.uniform(6, 10)
        signal = 2.0 * (((x - cx) ** 2 + (y - cy) ** 2) < radius**2) - 1
    image = 0.5 + 0.08 * signal + rng.normal(0, 0.08, signal.shape)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def write_dataset_zip(path: Path, per_class: int = 80, seed: int = 0) -> Path:
    """A folder-per-class zip of three texture classes."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path, "w") as archive:
        for kind in CLASSES:
            for k in range(per_class):
                archive.writestr(f"{kind}/{k:03d}.png", png_bytes(pattern(kind, rng)))
    return path


# --- the stack -------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def web_url(worker: object) -> Iterator[str]:
    """The real API in its own process, serving the built web app, with the session's
    Redis and worker behind it."""
    if not (FRONTEND_DIST / "index.html").is_file():
        pytest.fail(
            f"{FRONTEND_DIST / 'index.html'} is missing: build the web app first "
            "(cd frontend && npm ci && npm run build)"
        )
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = ROOT / "web-api.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "advguard.cli", "serve", "--port", str(port)],
        env={**os.environ, **SERVICE_ENV, "ADVGUARD_FRONTEND_DIR": str(FRONTEND_DIST)},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    # Generous: on a loaded 2-core machine importing torch alone has taken over a minute.
    deadline = time.monotonic() + 240
    while not _healthy(url):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the API did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield url
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def page_errors() -> list[str]:
    """Uncaught exceptions and console errors (failed requests included) in the page."""
    return []


@pytest.fixture(scope="module")
def page(web_url: str, page_errors: list[str]) -> Iterator[object]:
    """A Chromium page on the web app."""
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=web_url)
        opened = context.new_page()
        opened.set_default_timeout(30_000)
        opened.on("pageerror", lambda error: page_errors.append(f"uncaught: {error}"))
        opened.on(
            "console",
            lambda message: message.type == "error" and page_errors.append(message.text),
        )
        yield opened
        context.close()
        browser.close()


# --- the flow --------------------------------------------------------------------------


def screenshot(page, name: str) -> None:
    """A full-page screenshot, ``<name>.png`` at 1280 px, ``<name>-<width>px.png`` else."""
    width = page.viewport_size["width"]
    suffix = "" if width == WIDE else f"-{width}px"
    page.screenshot(path=str(SCREENSHOTS / f"{name}{suffix}.png"), full_page=True)


def assert_fits(page, where: str) -> None:
    """Nothing pushes the page sideways (wide tables scroll inside their frame) and every
    chart keeps its labels whole and apart, at the window's width."""
    extra = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert extra <= 0, f"{where} is {extra} px wider than the window"
    problems = chart_label_problems(page)
    assert not problems, f"{where}: {problems}"


def open_page(page, title: str) -> None:
    """Go to a page through the navigation bar, by keyboard-reachable link."""
    page.get_by_role("navigation", name="Pages").get_by_role("link", name=title).click()
    page.get_by_role("heading", level=1, name=title).wait_for()


def start_job(page, submit) -> str:
    """Click ``submit`` and return the id of the job that the click created (the answer of
    its ``POST /api/v1/jobs``): other tests' jobs of the same type share the service."""
    with page.expect_response(
        lambda response: response.request.method == "POST" and response.url.endswith("/api/v1/jobs")
    ) as created:
        submit.click()
    assert created.value.ok, created.value.text()
    return str(created.value.json()["id"])


def wait_job_succeeded(scope, job_id: str) -> None:
    """Wait until ``scope`` shows job ``job_id`` ended; fail with its error unless it
    succeeded."""
    tracker = scope.locator(f".job-progress[data-job-id='{job_id}']")
    tracker.wait_for()
    ended = scope.locator(
        f".job-progress[data-job-id='{job_id}'][data-state=succeeded], "
        f".job-progress[data-job-id='{job_id}'][data-state=failed], "
        f".job-progress[data-job-id='{job_id}'][data-state=cancelled]"
    )
    ended.wait_for(timeout=JOB_TIMEOUT_MS)
    state = ended.get_attribute("data-state")
    assert state == "succeeded", f"job {state}: {ended.inner_text()}"


def watch_progress(page, job_id: str) -> None:
    """Record, in the page, every value that job ``job_id``'s progress bar shows until the
    job ends (sampled every 50 ms; read back with :func:`assert_progress_moved`)."""
    page.evaluate(
        """id => {
          window.progressSeen = window.progressSeen || {};
          const seen = (window.progressSeen[id] = []);
          const timer = setInterval(() => {
            const tracker = document.querySelector(`.job-progress[data-job-id='${id}']`);
            const value = tracker?.querySelector("[role=progressbar]")?.getAttribute("aria-valuenow");
            if (value != null && seen[seen.length - 1] !== Number(value)) seen.push(Number(value));
            if (tracker && !["queued", "running"].includes(tracker.dataset.state)) clearInterval(timer);
          }, 50);
        }""",
        job_id,
    )


def assert_progress_moved(page, job_id: str, what: str) -> None:
    """The bar of a finished job never went back and showed values between 0 and 100 %
    while it ran (not 0 until a jump to the end)."""
    seen = page.evaluate("id => window.progressSeen[id]", job_id)
    assert seen == sorted(seen), f"{what}: progress went back: {seen}"
    assert seen[-1] == 100, f"{what}: ended at {seen}"
    assert len({value for value in seen if 0 < value < 100}) >= 2, f"{what}: did not move: {seen}"


def chart_label_problems(page) -> list[str]:
    """Every chart's labels lie inside its drawing and none covers another."""
    return page.evaluate(
        """() => {
          const problems = [];
          for (const svg of document.querySelectorAll("svg[role=img]")) {
            const frame = svg.getBoundingClientRect();
            if (frame.width === 0) continue;  // not shown (a closed <details>)
            const chart = svg.querySelector("title")?.textContent ?? "a chart";
            const boxes = [...svg.querySelectorAll("text")]
              .filter((text) => text.textContent.trim() !== "")
              .map((text) => [text.textContent, text.getBoundingClientRect()]);
            for (const [text, box] of boxes)
              if (box.left < frame.left - 1 || box.right > frame.right + 1 ||
                  box.top < frame.top - 1 || box.bottom > frame.bottom + 1)
                problems.push(`${chart}: "${text}" sticks out of the chart`);
            boxes.forEach(([a, one], i) => boxes.slice(i + 1).forEach(([b, other]) => {
              const across = Math.min(one.right, other.right) - Math.max(one.left, other.left);
              const down = Math.min(one.bottom, other.bottom) - Math.max(one.top, other.top);
              if (across > 1 && down > 1) problems.push(`${chart}: "${a}" covers "${b}"`);
            }));
          }
          return problems;
        }"""
    )


def assert_tables_whole(page, where: str) -> None:
    """At the desktop width no table needs its sideways scroll: every column shows."""
    cut = page.evaluate(
        """() => [...document.querySelectorAll(".table-wrap")]
          .filter((frame) => frame.scrollWidth > frame.clientWidth + 1)
          .map((frame) => frame.querySelector("caption")?.textContent ?? frame.textContent.slice(0, 40))"""
    )
    assert not cut, f"{where}: tables wider than their frame at {WIDE} px: {cut}"


def select_named(select, name: str) -> str:
    """Choose the option that starts with ``name`` (pickers show names, then the short id
    or a time); return its value, the record's id."""
    option = select.locator("option", has_text=re.compile("^" + re.escape(name)))
    value = option.get_attribute("value")
    select.select_option(value=value)
    return str(value)


def query_value(page, key: str) -> str:
    found = re.search(rf"[?&]{key}=([^&]+)", page.url)
    assert found, f"no {key} in {page.url}"
    return found.group(1)


def upload_dataset(page, tmp_path: Path, name: str) -> None:
    """Datasets: a bad upload shows the API's error; a good one, a sample grid per class."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", level=1, name="Datasets")).to_be_visible()
    upload = page.get_by_role("form", name="Upload a dataset")
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip")
    upload.get_by_label("Dataset zip", exact=True).set_input_files(broken)
    upload.get_by_role("button", name="Upload").click()
    expect(upload.get_by_role("alert")).to_have_text(
        "Upload failed: 'broken.zip' is not a zip archive: upload a .zip with one folder per "
        "class (HTTP 422)"
    )
    upload.get_by_label("Dataset zip", exact=True).set_input_files(
        write_dataset_zip(tmp_path / "shapes.zip")
    )
    upload.get_by_label("Name (optional)", exact=True).fill(name)
    upload.get_by_role("button", name="Upload").click()
    grid = page.get_by_test_id("sample-grid")
    expect(grid).to_be_visible(timeout=60_000)
    expect(upload.get_by_role("alert")).to_have_count(0)
    for kind in CLASSES:
        expect(grid.get_by_text(kind, exact=True)).to_be_visible()
    expect(grid.locator("img")).to_have_count(4 * len(CLASSES))
    expect(page.get_by_role("row", name=re.compile(name))).to_be_visible()
    assert_fits(page, "Datasets")
    screenshot(page, "datasets")


def train_classifier(page, dataset_name: str) -> str:
    """Models: train the built-in classifier as a job, followed live; its learning curves
    and confusion matrix. Returns the job's id."""
    from playwright.sync_api import expect

    open_page(page, "Models")
    form = page.get_by_role("form", name="Train the built-in classifier")
    form.get_by_label("Dataset", exact=True).select_option(label=dataset_name)
    form.get_by_label("Epochs", exact=True).fill("15")
    job_id = start_job(page, form.get_by_role("button", name="Train classifier"))
    watch_progress(page, job_id)
    panel = page.get_by_role("region", name="Train the built-in classifier", exact=True)
    # Unnamed, the job is called after what it does and on what: the dataset's name.
    expect(panel.locator(f".job-progress[data-job-id='{job_id}']")).to_contain_text(
        f"CNN on {dataset_name}"
    )
    wait_job_succeeded(panel, job_id)
    assert_progress_moved(page, job_id, "training the classifier")
    summary = panel.get_by_role("status").filter(has_text="Test accuracy")
    expect(summary).to_be_visible()
    # The new model is shown by its name; its id is one click away.
    expect(summary.locator(".record-name .name")).to_have_text(f"CNN on {dataset_name}")
    summary.get_by_role("button", name=f"Id of CNN on {dataset_name}").click()
    expect(summary.locator("code.record-id")).to_have_text(re.compile("^[0-9a-f]{16}$"))
    expect(
        page.get_by_role("row", name=re.compile("trained blobs, checks, stripes"))
    ).not_to_have_count(0)
    expect(page.get_by_role("img", name=re.compile("^Learning curves"))).to_be_visible()
    matrix = page.get_by_role("img", name=re.compile("^Confusion matrix: true class"))
    for kind in CLASSES:
        expect(matrix.get_by_text(kind, exact=True)).to_have_count(2)  # a row and a column
    assert_fits(page, "Models")
    screenshot(page, "models")
    return job_id


def build_set(page, dataset_name: str) -> str:
    """Attack lab: FGSM and PGD at 8/255 with a live progress bar, then the gallery of
    original, adversarial and amplified perturbation. Returns the set's job id."""
    from playwright.sync_api import expect

    open_page(page, "Attack lab")
    form = page.get_by_role("form", name="Build an adversarial set")
    form.get_by_label("Dataset", exact=True).select_option(label=dataset_name)
    # Pickers show names: the model is the one trained on the dataset.
    select_named(form.get_by_label("Model", exact=True), f"CNN on {dataset_name}")
    for attack in ("fgsm", "pgd"):
        form.locator(f"input[name=attacks][value='{attack}']").check()
    form.get_by_label("Budgets ε (comma-separated)", exact=True).fill("8")
    form.get_by_label("Share of images attacked per attack and ε", exact=True).fill("1")
    job_id = start_job(page, form.get_by_role("button", name="Build adversarial set"))
    watch_progress(page, job_id)
    panel = page.get_by_role("region", name="Adversarial set", exact=True)
    expect(panel.get_by_role("progressbar").first).to_be_visible()
    wait_job_succeeded(panel, job_id)
    assert_progress_moved(page, job_id, "building the set")
    pairs = page.get_by_test_id("gallery").get_by_test_id("gallery-pair")
    expect(pairs.first).to_be_visible()
    first = pairs.first
    expect(first.get_by_role("img", name=re.compile("original"))).to_be_visible()
    expect(first.get_by_role("img", name=re.compile("adversarial image"))).to_be_visible()
    perturbation = first.get_by_role("img", name=re.compile("perturbation, amplified"))
    expect(perturbation).to_be_visible()
    expect(first).to_contain_text("predicted")
    # The perturbation is drawn in the browser from the two images: not blank mid-grey.
    page.wait_for_function(
        "canvas => canvas.width > 1", arg=perturbation.element_handle(), timeout=10_000
    )
    assert_fits(page, "Attack lab")
    screenshot(page, "attack-lab")
    return job_id


def train_and_evaluate_detector(
    page, set_job_id: str, dataset_name: str, detector_name: str
) -> tuple[str, str]:
    """Detector: train one on the set (picked by its name), name it, evaluate it, see the
    report drawn as charts. Returns (training job, evaluation job)."""
    from playwright.sync_api import expect

    open_page(page, "Detector")
    form = page.get_by_role("form", name="Train a detector")
    set_name = f"fgsm, pgd at 8/255 on CNN on {dataset_name}"
    assert select_named(form.get_by_label("Adversarial set", exact=True), set_name) == set_job_id
    train_job = start_job(page, form.get_by_role("button", name="Train detector"))
    watch_progress(page, train_job)
    wait_job_succeeded(page.get_by_role("region", name="Train a detector", exact=True), train_job)
    assert_progress_moved(page, train_job, "training the detector")
    expect(page).to_have_url(re.compile(r"[?&]id="), timeout=10_000)
    detector_id = query_value(page, "id")
    # Renamed in place; the id stays one click away.
    default_name = f"detector on {set_name}"
    page.get_by_role("button", name=f"Rename {default_name}", exact=True).click()
    page.get_by_label(f"New name for {default_name}", exact=True).fill(detector_name)
    page.keyboard.press("Enter")
    renamed = page.get_by_role("region", name="Report", exact=True).locator(".record-name")
    expect(renamed.locator(".name")).to_have_text(detector_name)
    renamed.get_by_role("button", name=f"Id of {detector_name}", exact=True).click()
    expect(renamed.locator("code.record-id")).to_have_text(detector_id)
    picker = page.get_by_label("Detector", exact=True)
    expect(picker.locator("option:checked")).to_have_text(re.compile(detector_name))
    panel = page.get_by_role("region", name="Report", exact=True)
    expect(panel).to_contain_text("No report yet")
    evaluate_job = start_job(page, panel.get_by_role("button", name="Evaluate (write the report)"))
    watch_progress(page, evaluate_job)
    wait_job_succeeded(panel, evaluate_job)
    assert_progress_moved(page, evaluate_job, "evaluating the detector")
    report = page.get_by_test_id("report")
    expect(report).to_be_visible(timeout=30_000)
    expect(report.get_by_role("img", name="AUROC per attack and budget")).to_be_visible()
    table = report.get_by_role("table", name=re.compile("AUROC per attack and budget"))
    for attack in ("fgsm", "pgd"):
        expect(table.get_by_role("row", name=re.compile(rf"^{attack} 8.255 "))).to_be_visible()
    # The guard's answers, clean included: a row and a column each.
    answers = report.get_by_role("img", name=re.compile("^Guard answers"))
    for label in ("clean", "fgsm", "pgd"):
        expect(answers.get_by_text(label, exact=True)).to_have_count(2)
    # Beside the trained attacks: those it never saw, and each trained one left out in turn.
    unseen = report.get_by_role("table", name=re.compile("never in the detector's training"))
    for attack in ("deepfool", "apgd", "square"):
        expect(unseen.get_by_role("row", name=re.compile(rf"^{attack} "))).to_be_visible()
    per_attack = report.get_by_role("table", name="Per attack, all budgets together")
    for attack in ("fgsm", "pgd"):
        expect(per_attack.get_by_role("row", name=re.compile(rf"^{attack} "))).to_contain_text(
            re.compile(r"[01]\.\d{3}\s*[01]\.\d{3}")
        )
    # ROC curves drawn from the report's points: a panel per scorer, a line per attack.
    roc = report.get_by_role("img", name="ROC curves: detector", exact=True)
    expect(roc).to_be_visible()
    for attack in ("fgsm", "pgd"):
        expect(roc.locator(f"path.chart-line[data-series='{attack}']")).to_have_count(1)
    legend = report.get_by_role("list", name="detector: AUROC per attack", exact=True)
    expect(legend.get_by_role("listitem")).to_have_text(
        [re.compile(rf"^{attack} — AUROC [01]\.\d{{3}}$") for attack in ("fgsm", "pgd")]
    )
    for baseline in ("feature squeezing", "mahalanobis"):
        expect(
            report.get_by_role("img", name=f"ROC curves: {baseline}", exact=True)
        ).to_be_visible()
    expect(report.get_by_role("link", name=re.compile("roc.png"))).to_be_visible()
    assert_fits(page, "Detector")
    assert_tables_whole(page, "Detector")
    screenshot(page, "detector")
    return train_job, evaluate_job


def live_test(page, tmp_path: Path, detector_name: str) -> None:
    """Live test: a blank grey image is called unlike the training scans; a clean image
    gets its class; attacked with PGD it is caught, with an attack named. The detector
    catches most attacked images, not all: the first of a few fresh images on which it does
    passes."""
    from playwright.sync_api import expect

    open_page(page, "Live test")
    select_named(page.get_by_label("Detector", exact=True), detector_name)
    grey = tmp_path / "grey.png"
    grey.write_bytes(png_bytes(np.full((32, 32), 128, dtype=np.uint8)))
    page.get_by_label("Image (PNG, JPEG or DICOM)", exact=True).set_input_files(grey)
    verdict = page.get_by_role("region", name="Verdict on grey.png", exact=True)
    unlike = verdict.get_by_role("note", name="Unlike the training scans")
    expect(unlike).to_contain_text("does not look like the scans the guard was trained on")
    expect(unlike.get_by_role("listitem").first).to_contain_text(re.compile(r"\(training scans "))
    screenshot(page, "live-test-unlike")
    form = page.get_by_role("form", name="Attack this image")
    form.get_by_label("Attack", exact=True).select_option(value="pgd")
    form.get_by_label("Budget ε", exact=True).fill("8")
    outcomes = []
    for seed, kind in enumerate(CLASSES):
        clean = tmp_path / f"clean-{kind}.png"
        clean.write_bytes(png_bytes(pattern(kind, np.random.default_rng(1000 + seed))))
        page.get_by_label("Image (PNG, JPEG or DICOM)", exact=True).set_input_files(clean)
        verdict = page.get_by_role("region", name=f"Verdict on {clean.name}", exact=True)
        expect(verdict).to_contain_text(f"Clean — class {kind}", timeout=30_000)
        expect(verdict.get_by_role("note", name="Unlike the training scans")).to_have_count(0)
        form.get_by_role("button", name="Attack this image").click()
        outcome = page.get_by_test_id("attack-outcome")
        expect(outcome).to_be_visible(timeout=60_000)
        # The small detector misses or misnames a PGD image now and then, as real ones do.
        expect(outcome.get_by_role("status")).to_contain_text(
            re.compile("The guard (caught it|did not flag)")
        )
        outcomes.append(outcome.get_by_role("status").inner_text())
        if "caught it:" in outcomes[-1]:
            break
    # Caught, with the attack it names and the one really used both shown. (Which name the
    # small detector gives a PGD image, PGD or FGSM at the same ε, varies with the machine
    # that trained it; naming is measured in the detection tests, not here.)
    assert re.search(r"caught it: \w+ \(\d+\.\d %\), attacked with pgd", outcomes[-1]), outcomes
    attacked = page.get_by_role("region", name="Guard on the attacked image", exact=True)
    expect(attacked).to_contain_text(re.compile(r"Adversarial — attack \w+"))
    screenshot(page, "live-test")
    # The attacks that take no step size (APGD) or query the model only (Square) work too.
    for name in ("apgd", "square"):
        form.get_by_label("Attack", exact=True).select_option(value=name)
        form.get_by_role("button", name="Attack this image").click()
        expect(outcome.get_by_role("status")).to_contain_text(
            re.compile(rf"attacked with {name}\.|did not flag the {name} image"), timeout=120_000
        )
    assert_fits(page, "Live test")
    query_attacks(page)


def query_attacks(page) -> None:
    """Query attacks: a client behind the proxy sends a stream of near-copies to predict
    (as Square does); the Live test page lists it within a poll, and Clear forgets it."""
    from playwright.sync_api import expect

    scan = torch.from_numpy(pattern("blobs", np.random.default_rng(7)).astype(np.float32) / 255)
    for body in attack_stream(scan[None], 20, seed=4):
        answer = page.request.post(
            "/api/v1/predict",
            multipart={"files": {"name": "q.png", "mimeType": "image/png", "buffer": body}},
            headers={"X-Forwarded-For": "10.9.9.9"},
        )
        assert answer.ok, answer.text()
    assert answer.json()["verdicts"][0]["query_attack"]["suspected"] is True
    flagged = page.get_by_role("table", name="Flagged clients")
    row = flagged.get_by_role("row", name=re.compile(r"address:10\.9\.9\.9"))
    expect(row).to_be_visible(timeout=15_000)
    screenshot(page, "live-test-query-attacks")
    row.get_by_role("button", name="Clear").click()
    expect(row).to_have_count(0)


def evaluate_robustness(page, dataset_name: str, detector_name: str) -> str:
    """Robustness: FGSM and PGD at ε = 0 and 8/255 on 16 test images, undefended and behind
    bit-depth reduction (attacked plainly and with BPDA), followed live; then a chart per
    defense setting drawn from the result, and real accuracies in its tables. Returns the
    job id."""
    from playwright.sync_api import expect

    open_page(page, "Robustness")
    form = page.get_by_role("form", name="Evaluate robustness")
    form.get_by_label("Dataset", exact=True).select_option(label=dataset_name)
    select_named(form.get_by_label("Model", exact=True), f"CNN on {dataset_name}")
    attacks = form.locator("input[name=attacks]")
    expect(attacks).not_to_have_count(0)
    for box in attacks.all():
        box.set_checked(box.get_attribute("value") in ("fgsm", "pgd"))
    expect(form.locator("input[name=attacks]:checked")).to_have_count(2)
    form.get_by_label("Budgets ε (comma-separated)", exact=True).fill("0, 8/255")
    form.get_by_role("checkbox", name="bit-depth reduction", exact=True).check()
    form.get_by_label("Test images (a random sample)", exact=True).fill("16")
    # The detector trained earlier guards this model: the adaptive test runs too.
    select_named(
        form.get_by_label("Detector for the adaptive test (optional)", exact=True), detector_name
    )
    job_id = start_job(page, form.get_by_role("button", name="Evaluate robustness"))
    watch_progress(page, job_id)
    expect(form.get_by_role("alert")).to_have_count(0)
    panel = page.get_by_role("region", name="Accuracy under attack", exact=True)
    expect(panel.get_by_role("progressbar").first).to_be_visible()
    wait_job_succeeded(panel, job_id)
    assert_progress_moved(page, job_id, "evaluating robustness")
    report = panel.get_by_test_id("robustness-report")
    expect(report).to_be_visible(timeout=30_000)
    for defense in ("none", "bit_depth", "bit_depth + BPDA"):
        chart = report.get_by_role("img", name=f"Accuracy against ε: {defense}", exact=True)
        expect(chart).to_be_visible()
        for series in ("fgsm", "pgd", "worst case"):
            expect(chart.locator(f"path.chart-line[data-series='{series}']")).to_have_count(1)
    expect(
        report.get_by_role("img", name="Worst-case accuracy against ε per defense", exact=True)
    ).to_be_visible()
    table = report.get_by_role("table", name=re.compile(r"^none \(clean accuracy \d+\.\d %\)$"))
    expect(table.get_by_role("columnheader")).to_have_text(["attack", "clean", "ε 8/255"])
    worst = table.get_by_role("row", name=re.compile("^worst case"))
    expect(worst.get_by_role("cell")).to_have_text([re.compile(r"^\d{1,3}\.\d %$")] * 2)
    clean, attacked = (
        float(cell.split()[0]) for cell in worst.get_by_role("cell").all_inner_texts()
    )
    # Per image, what survives every attack at 8/255 was correct at 0 to begin with.
    assert 0 <= attacked <= clean <= 100, (clean, attacked)
    expect(report.get_by_role("link", name="Download the plot (robustness.png)")).to_be_visible()
    adaptive = panel.get_by_test_id("adaptive-report")
    expect(
        adaptive.get_by_role("img", name="Protected accuracy against ε (adaptive attack)")
    ).to_be_visible()
    rows = adaptive.get_by_role("table").get_by_role("row")
    for setting in (
        "classifier",
        "classifier + detector",
        "classifier + detector (non-adaptive)",
    ):
        row = rows.filter(has=page.get_by_role("rowheader", name=setting, exact=True))
        expect(row.get_by_role("cell")).to_have_text([re.compile(r"^\d{1,3}\.\d %$")])
    assert_fits(page, "Robustness")
    screenshot(page, "robustness")
    return job_id


def check_jobs(page, names: dict[str, str]) -> None:
    """Jobs: every job of the flow listed by its name, succeeded, with a full progress bar."""
    from playwright.sync_api import expect

    open_page(page, "Jobs")
    for job_id, name in names.items():
        row = page.locator(f"tr[data-job-id='{job_id}']")
        expect(row).to_have_attribute("data-state", "succeeded")
        expect(row.locator(".record-name .name")).to_have_text(name)
        expect(row.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    assert_fits(page, "Jobs")
    if page.viewport_size["width"] == WIDE:
        assert_tables_whole(page, "Jobs")
    screenshot(page, "jobs")


def test_the_chart_check_finds_labels_cut_off_or_on_top_of_each_other(page) -> None:
    """The check the journey relies on fails where it should, on a chart drawn to fail."""
    page.set_content(
        '<svg role="img" viewBox="0 0 100 60" width="100" height="60"><title>drawn to fail'
        '</title><text x="80" y="20">cut off here</text><text x="5" y="50">one</text>'
        '<text x="8" y="52">two</text><text x="5" y="30"> </text></svg>'
    )
    assert chart_label_problems(page) == [
        'drawn to fail: "cut off here" sticks out of the chart',
        'drawn to fail: "one" covers "two"',
    ]


def revisit_on_a_phone(page, tmp_path: Path, left: dict[str, str], detector_name: str) -> None:
    """Every page the journey left (``left``: screenshot name -> address), opened again
    by its address at a phone's width: the same result shows, nothing is wider than the
    window, every chart label is whole. The live test judges a clean image there too."""
    from playwright.sync_api import expect

    page.set_viewport_size({"width": PHONE, "height": 900})
    results = {
        "datasets": page.get_by_test_id("sample-grid").locator("img").first,
        "models": page.get_by_role("img", name=re.compile("^Learning curves")),
        "attack-lab": page.get_by_test_id("gallery").get_by_test_id("gallery-pair").first,
        "detector": page.get_by_role("img", name="ROC curves: detector", exact=True),
        "robustness": page.get_by_test_id("adaptive-report").get_by_role("table"),
    }
    for name, address in left.items():
        page.goto(address)
        expect(results[name]).to_be_visible(timeout=30_000)
        assert_fits(page, f"{name} at {PHONE} px")
        screenshot(page, name)
    open_page(page, "Live test")
    select_named(page.get_by_label("Detector", exact=True), detector_name)
    clean = tmp_path / "phone-blobs.png"
    clean.write_bytes(png_bytes(pattern("blobs", np.random.default_rng(2000))))
    page.get_by_label("Image (PNG, JPEG or DICOM)", exact=True).set_input_files(clean)
    verdict = page.get_by_role("region", name=f"Verdict on {clean.name}", exact=True)
    expect(verdict).to_contain_text(re.compile("Clean — class|Adversarial — attack"))
    assert_fits(page, f"Live test at {PHONE} px")
    screenshot(page, "live-test")


def test_the_whole_journey_through_the_web_app(
    page, page_errors: list[str], tmp_path: Path
) -> None:
    """The journey at a desktop width, then every page it left again at a phone's."""
    started = time.monotonic()
    page.set_viewport_size({"width": WIDE, "height": 900})
    dataset_name = f"e2e shapes {time.time_ns()}"
    detector_name = "e2e guard"
    model_name = f"CNN on {dataset_name}"
    set_name = f"fgsm, pgd at 8/255 on {model_name}"
    left: dict[str, str] = {}
    page.goto("/")
    try:
        upload_dataset(page, tmp_path, dataset_name)
        left["datasets"] = page.url
        classifier_job = train_classifier(page, dataset_name)
        left["models"] = page.url
        set_job = build_set(page, dataset_name)
        left["attack-lab"] = page.url
        detector_job, evaluate_job = train_and_evaluate_detector(
            page, set_job, dataset_name, detector_name
        )
        left["detector"] = page.url
        live_test(page, tmp_path, detector_name)
        robustness_job = evaluate_robustness(page, dataset_name, detector_name)
        left["robustness"] = page.url
        jobs = {
            classifier_job: model_name,
            set_job: set_name,
            detector_job: f"detector on {set_name}",
            evaluate_job: f"report on {detector_name}",
            robustness_job: f"robustness of {model_name}",
        }
        check_jobs(page, jobs)
        revisit_on_a_phone(page, tmp_path, left, detector_name)
        check_jobs(page, jobs)
    except BaseException:
        screenshot(page, "failure")
        raise
    # The one expected failure: the broken zip's 422, shown in the page above.
    unexpected = [error for error in page_errors if "status of 422" not in error]
    page_errors.clear()
    assert not unexpected, f"errors in the page: {unexpected}"
    print(f"web e2e journey: {time.monotonic() - started:.0f} s")
