"""The adversarial set builder, the detector, the guard and the detection report."""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix, roc_auc_score

from advguard.data.appearance import AppearanceRange
from advguard.detection import (
    AUGMENTED,
    CLEAN,
    NOISE_CONTROLS,
    AdversarialSet,
    AttackSpec,
    BuildConfig,
    Detector,
    DetectorLoadError,
    FeatureSqueezing,
    Mahalanobis,
    attack_family,
    build_adversarial_set,
    default_attack_specs,
    export_zip,
    extract_features,
    load_adversarial_set,
)
from advguard.detection.builder import NOISE_SIGN, rician_noise
from advguard.detection.density import CleanDensity
from advguard.detection.detector import (
    HEAD_WEIGHT,
    SHARPNESS,
    clean_threshold,
    head_log_odds,
    out_of_fold_clean_scores,
)
from advguard.detection.features import soft_histogram
from advguard.evaluation.detection_report import (
    auroc,
    build_detection_report,
    check_unseen_attacks,
    flipped,
    report_markdown,
    robustness_from_set,
    write_detection_report,
)
from advguard.guard import Guard
from advguard.models import ModelLoadError


def test_default_specs_cover_five_attacks_at_three_budgets():
    specs = default_attack_specs()
    assert [s.label for s in specs if s.name == "pgd"] == ["pgd 2/255", "pgd 4/255", "pgd 8/255"]
    assert {s.name for s in specs} == {"fgsm", "bim", "pgd", "mim", "cw"}
    assert all(
        s.params["alpha"] == s.params["eps"] / 4 for s in specs if s.name in ("bim", "pgd", "mim")
    )
    with pytest.raises(ValueError, match="unknown attack"):
        default_attack_specs(["nope"])


def test_no_source_image_in_both_splits(built):
    rows = built.adversarial.rows
    train = {(r.source_file, r.source_id) for r in rows if r.split == "train"}
    test = {(r.source_file, r.source_id) for r in rows if r.split == "test"}
    assert train and test
    assert not {f for f, _ in train} & {f for f, _ in test}
    assert not {i for _, i in train} & {i for _, i in test}


def test_counts_and_labels(built, small_bundled):
    adversarial = built.adversarial
    for split in ("train", "test"):
        n = len(small_bundled[split])
        rows = [r for r in adversarial.rows if r.split == split]
        assert sum(r.attack == CLEAN for r in rows) == n
        for spec in built.specs:
            assert sum(r.attack == spec.name for r in rows) == (n + 1) // 2
        for kind in (*NOISE_CONTROLS, AUGMENTED):
            assert sum(r.attack == kind for r in rows) == (n + 1) // 2
        assert not any(r.attack == NOISE_SIGN for r in rows)  # read in old sets, never built
    targets = adversarial.detector_targets()
    for row, target in zip(adversarial.rows, targets.tolist(), strict=True):
        expected = adversarial.attack_names.index(row.attack) + 1 if row.is_attack else 0
        assert target == expected  # noise and augmented controls are labelled clean


def test_images_are_8_bit_and_sizes_measured_after_quantisation(built):
    adversarial, folder = built.adversarial, built.folder
    assert adversarial.images.dtype == torch.uint8
    clean_of = {r.source_id: i for i, r in enumerate(adversarial.rows) if r.attack == CLEAN}
    for position in range(0, len(adversarial), max(1, len(adversarial) // 200)):
        row = adversarial.rows[position]
        on_disk = np.asarray(Image.open(folder / row.file))
        assert np.array_equal(on_disk, adversarial.images[position, 0].numpy())
        difference = (
            adversarial.images[position].float()
            - adversarial.images[clean_of[row.source_id]].float()
        ) / 255
        assert row.linf == pytest.approx(float(difference.abs().max()), abs=1e-6)
        assert row.l2 == pytest.approx(float(difference.norm()), abs=1e-5)
        if row.attack in ("fgsm", "pgd"):
            assert row.linf <= built.eps + 1e-6  # rounding the clean image first keeps the ball


def test_manifest_round_trip_and_zip(built, tmp_path):
    loaded = load_adversarial_set(built.folder)
    # Compared as JSON because eps is NaN (never equal to itself) for clean rows and CW.
    assert [json.dumps(asdict(r)) for r in loaded.rows] == [
        json.dumps(asdict(r)) for r in built.adversarial.rows
    ]
    assert torch.equal(loaded.images, built.adversarial.images)
    assert loaded.attack_names == ["fgsm", "pgd", "cw"]
    header = (built.folder / "manifest.csv").read_text().splitlines()[0].split(",")
    for column in ("source_file", "split", "true_label", "attack", "params", "predicted_before",
                   "predicted_after", "success", "linf", "l2"):  # fmt: skip
        assert column in header
    archive = export_zip(built.folder, tmp_path / "set.zip")
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
    assert "manifest.csv" in names and len(names) == len(built.adversarial) + 2
    assert not any(name.startswith("/") or ".." in name for name in names)


def test_robustness_from_set_matches_manifest(built):
    rows = {(r.attack, r.eps): r for r in robustness_from_set(built.adversarial)}
    pgd = [r for r in built.adversarial.rows if r.split == "test" and r.attack == "pgd"]
    correct = [r for r in pgd if r.predicted_before == r.true_label]
    assert rows[("pgd", built.eps)].success_rate == pytest.approx(
        sum(r.success for r in correct) / len(correct)
    )
    assert rows[("cw", None)].max_linf > 0


def test_soft_histogram_counts_and_gradient():
    values = torch.tensor([[0.0, 0.5, 1.0, 7.0]], requires_grad=True)
    histogram = soft_histogram(values, low=0, bins=3)
    # 0 → bin 0; 0.5 → half in bins 0 and 1; 1 → bin 1; 7 is past the end → bin 2.
    assert torch.allclose(histogram, torch.tensor([[0.375, 0.375, 0.25]]))
    histogram[0, 1].backward()
    assert values.grad is not None and values.grad.abs().sum() > 0


def test_detector_separates_attacks_from_clean(built, trained_detector):
    detector, features = trained_detector
    adversarial = built.adversarial
    test = adversarial.where(lambda r: r.split == "test")
    detection = detector.detect(adversarial.float_images(test))
    clean = torch.tensor([adversarial.rows[i].attack == CLEAN for i in test.tolist()])
    pgd = torch.tensor([adversarial.rows[i].attack == "pgd" for i in test.tolist()])
    truth = np.r_[np.zeros(int(clean.sum())), np.ones(int(pgd.sum()))]
    scores = np.r_[detection.score[clean].numpy(), detection.score[pgd].numpy()]
    assert roc_auc_score(truth, scores) > 0.85
    # The threshold was chosen on held-out clean train images for a 2 % target.
    assert float(detection.is_adversarial[clean].float().mean()) <= 0.10
    assert features.shape == (len(adversarial), detector.features.dim)


def test_detector_save_load_gives_the_same_answers(built, trained_detector, tmp_path):
    detector, _ = trained_detector
    images = built.adversarial.float_images(torch.arange(0, len(built.adversarial), 97))
    detector.save(tmp_path / "detector")
    loaded = Detector.load(tmp_path / "detector", built.model)
    assert loaded.threshold == detector.threshold
    assert torch.allclose(
        loaded.detect(images).probabilities, detector.detect(images).probabilities
    )
    assert loaded.density.fitted
    assert torch.allclose(loaded.detect(images).score, detector.detect(images).score)
    (tmp_path / "detector" / "detector.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(DetectorLoadError, match="cannot load a detector"):
        Detector.load(tmp_path / "detector", built.model)


def test_guard_takes_an_attacks_raw_output_that_still_requires_grad(built, trained_detector):
    """A user attacks ``guard.classifier`` with another library and asks the guard: the
    attack's output may still be part of its graph (one FGSM step written without detach,
    as torchattacks' APGD returns it); the verdicts are those of the detached images."""
    detector, _ = trained_detector
    guard = Guard(built.model, built.spec, detector)
    clean = built.adversarial.float_images(torch.arange(0, len(built.adversarial), 97))
    labels = built.model(clean).argmax(1)
    start = clean.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(built.model(start), labels)
    (gradient,) = torch.autograd.grad(loss, start, create_graph=True)
    attacked = (start + 8 / 255 * gradient.sign()).clamp(0, 1)
    assert attacked.requires_grad and not attacked.is_leaf
    verdicts = guard.predict(attacked)
    expected = guard.predict(attacked.detach())
    assert [(v.is_adversarial, v.attack, v.label) for v in verdicts] == [
        (v.is_adversarial, v.attack, v.label) for v in expected
    ]
    assert [v.score for v in verdicts] == pytest.approx([v.score for v in expected], abs=1e-6)
    assert torch.allclose(
        extract_features(detector.features, attacked, show_progress=False),
        extract_features(detector.features, attacked.detach(), show_progress=False),
    )
    assert guard.predict(start)[0].class_probabilities == pytest.approx(
        guard.predict(clean)[0].class_probabilities, abs=1e-6
    )


def test_guard_decisions_follow_the_threshold(built, trained_detector, tmp_path):
    detector, _ = trained_detector
    guard = Guard(built.model, built.spec, detector)
    images = built.adversarial.float_images(torch.arange(0, len(built.adversarial), 53))
    verdicts = guard.predict(images)
    probabilities = built.model(images).softmax(1)
    for verdict, p, score in zip(
        verdicts, probabilities, detector.detect(images).score, strict=True
    ):
        assert verdict.is_adversarial == (score > guard.threshold)
        assert set(verdict.attack_probabilities) == {"fgsm", "pgd", "cw"}
        assert verdict.class_probabilities == pytest.approx(
            dict(zip(built.spec.class_names, p.tolist(), strict=True)), abs=1e-6
        )
        if verdict.is_adversarial:
            assert verdict.label is None
            best = max(verdict.attack_probabilities, key=verdict.attack_probabilities.get)
            assert verdict.attack == best
        else:
            assert verdict.attack is None
            assert verdict.label == built.spec.class_names[int(p.argmax())]
    guard.save(tmp_path / "guard")
    again = Guard.load(tmp_path / "guard").predict(images)
    assert [(v.is_adversarial, v.attack, v.label) for v in again] == [
        (v.is_adversarial, v.attack, v.label) for v in verdicts
    ]
    assert [v.score for v in again] == pytest.approx([v.score for v in verdicts], abs=1e-6)
    serving = Guard.load(tmp_path / "guard", serving=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in serving.classifier.modules())
    folded = serving.predict(images)
    # Folding reorders float sums, which flips the sign of near-zero input gradients that the
    # alignment features read: the scores move a little, and only verdicts on the threshold
    # may change.
    assert [v.score for v in folded] == pytest.approx([v.score for v in verdicts], abs=0.01)
    clear = [abs(v.score - guard.threshold) > 0.01 for v in verdicts]
    assert [(v.is_adversarial, v.attack, v.label) for v, c in zip(folded, clear) if c] == [
        (v.is_adversarial, v.attack, v.label) for v, c in zip(verdicts, clear) if c
    ]
    with pytest.raises(ValueError, match="serving=True cannot be saved"):
        serving.save(tmp_path / "again")
    detector.threshold, saved = -1.0, detector.threshold
    try:
        assert all(v.is_adversarial and v.label is None for v in guard.predict(images))
    finally:
        detector.threshold = saved
    with pytest.raises(ValueError, match="expected N×1×H×W"):
        guard.predict(images[0])


def test_guard_says_when_an_image_does_not_look_like_its_training_scans(
    built, trained_detector, tmp_path
):
    detector, _ = trained_detector
    clean_train = built.adversarial.where(lambda r: r.split == "train" and r.attack == CLEAN)
    appearance = AppearanceRange.fit(built.adversarial.images[clean_train])
    guard = Guard(built.model, built.spec, detector, appearance=appearance)
    clean_test = built.adversarial.where(lambda r: r.split == "test" and r.attack == CLEAN)
    scans = built.adversarial.float_images(clean_test)
    grey = torch.full_like(scans[:1], 0.5)
    verdicts = guard.predict(torch.cat([scans, grey]))
    # The grey image gets a class like any other; the guard adds that it is not a scan.
    assert verdicts[-1].unlike_training and verdicts[-1].class_probabilities
    assert sum(bool(v.unlike_training) for v in verdicts[:-1]) <= 0.02 * len(scans)
    guard.save(tmp_path / "guard")
    assert Guard.load(tmp_path / "guard").predict(grey)[0].unlike_training == (
        verdicts[-1].unlike_training
    )
    # A guard saved without the ranges (before they existed) says nothing either way.
    assert Guard(built.model, built.spec, detector).predict(grey)[0].unlike_training is None
    (tmp_path / "guard" / "appearance.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="not an appearance range"):
        Guard.load(tmp_path / "guard")


def test_threshold_is_set_on_out_of_fold_scores_of_every_clean_training_image(
    built, trained_detector
):
    """Each clean training image is scored by a head and a density that never fitted it,
    and only clean images count: the controls (noise, augmented views) score far lower
    than clean scans. Each part's clean scale comes from these scores."""
    detector, features = trained_detector
    adversarial, config = built.adversarial, detector.config
    targets = adversarial.detector_targets()
    head_scores, density_scores = out_of_fold_clean_scores(
        features, targets, adversarial, config, detector.density.columns
    )
    clean_rows = adversarial.where(lambda r: r.split == "train" and r.attack == CLEAN)
    assert len(head_scores) == len(density_scores) == len(clean_rows)
    # The density fitted on every clean row puts them closer (mean squared distance) than
    # the folds did.
    in_sample = detector.density(features[clean_rows])
    assert float(in_sample.exp().mean()) < float(density_scores.exp().mean())
    for row, part in enumerate((head_scores, density_scores)):
        median, tail = detector.clean_scale[row].tolist()
        assert median == pytest.approx(float(part.median()), abs=0.05 * abs(tail - median))
        assert float((part > tail).float().mean()) == pytest.approx(0.01, abs=1 / len(part))
    scores = detector.combine(head_scores, density_scores).sigmoid()
    assert detector.threshold == clean_threshold(scores, config.target_false_rejection)
    assert float((scores > detector.threshold).float().mean()) <= config.target_false_rejection


def test_clean_threshold_meets_its_target():
    scores = torch.linspace(0, 1, 1001)
    threshold = clean_threshold(scores, 0.02)
    assert float((scores > threshold).float().mean()) <= 0.02
    assert float((scores >= threshold).float().mean()) > 0.02 - 1e-9


def test_baselines_score_attacks_higher(built):
    adversarial = built.adversarial
    test = adversarial.where(lambda r: r.split == "test")
    rows = [adversarial.rows[i] for i in test.tolist()]
    clean = torch.tensor([r.attack == CLEAN for r in rows])
    pgd = torch.tensor([r.attack == "pgd" for r in rows])
    images = adversarial.float_images(test)
    squeezing = FeatureSqueezing(built.model).score(images)
    train_clean = adversarial.where(lambda r: r.split == "train" and r.attack == CLEAN)
    labels = torch.tensor(
        [adversarial.class_names.index(adversarial.rows[i].true_label) for i in train_clean]
    )
    mahalanobis = (
        Mahalanobis(built.model).fit(adversarial.float_images(train_clean), labels, 4).score(images)
    )
    for scores in (squeezing, mahalanobis):
        assert float(scores[pgd].mean()) > float(scores[clean].mean())


def refuse_non_standard(constant: str) -> None:
    raise ValueError(f"{constant} is not standard JSON")


def test_report_numbers_match_scikit_learn_and_files_are_written(built, trained_detector, tmp_path):
    detector, features = trained_detector
    adversarial = built.adversarial
    report, view = build_detection_report(
        detector, adversarial, features=features, show_progress=False
    )
    test = adversarial.where(lambda r: r.split == "test")
    scores = detector.detect(adversarial.float_images(test)).score
    rows = [adversarial.rows[i] for i in test.tolist()]
    clean = [i for i, r in enumerate(rows) if r.attack == CLEAN]
    fgsm = [i for i, r in enumerate(rows) if r.attack == "fgsm"]
    expected = roc_auc_score([0] * len(clean) + [1] * len(fgsm), scores[clean + fgsm].numpy())
    row = next(r for r in report.rows if r.attack == "fgsm")
    assert row.auroc == pytest.approx(expected, abs=1e-4)
    assert row.images == len(fgsm)
    assert report.clean_false_rejection == pytest.approx(
        float((scores[clean] > detector.threshold).float().mean())
    )
    assert [row.attack for row in report.leave_one_out] == ["fgsm", "pgd", "cw"]
    for left in report.leave_one_out:
        assert 0.5 <= left.auroc <= 1 and 0 <= left.tpr_successful <= 1
        assert left.clean_false_rejection < 0.1
    curve = report.roc_curves["detector"]["fgsm"]
    assert curve.auroc == pytest.approx(report.per_attack_auroc["fgsm"])
    assert curve.fpr[0] == curve.tpr[0] == 0 and curve.fpr[-1] == curve.tpr[-1] == 1
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(curve.auroc, abs=0.02)
    assert set(report.roc_curves) == {"detector", "feature squeezing", "mahalanobis"}
    assert set(row.baselines) == {"feature squeezing", "mahalanobis"}
    # The guard's answers, clean included: accepted (column 0) or rejected naming an attack.
    assert report.confusion_labels == [CLEAN, "fgsm", "pgd", "cw"]
    detection = detector.detect(adversarial.float_images(test))
    judged = [i for i, r in enumerate(rows) if r.attack == CLEAN or (r.is_attack and flipped(r))]
    expected_confusion = confusion_matrix(
        [report.confusion_labels.index(rows[i].attack) for i in judged],
        [int(detection.attack_index[i]) + 1 if detection.is_adversarial[i] else 0 for i in judged],
        labels=range(4),
    )
    assert report.guard_confusion == expected_confusion.tolist()
    assert sum(report.guard_confusion[0]) == report.clean_images
    assert sum(report.guard_confusion[0][1:]) / report.clean_images == pytest.approx(
        report.clean_false_rejection
    )
    assert 0 <= report.naming_accuracy <= report.family_accuracy <= 1
    out = write_detection_report(report, view, adversarial, tmp_path / "report")
    data = json.loads((out / "report.json").read_text(), parse_constant=refuse_non_standard)
    assert data["rows"][0]["attack"] == report.rows[0].attack
    markdown = (out / "report.md").read_text()
    assert "left out: AUROC" in markdown and "| fgsm | 8/255 |" in markdown
    for plot in ("roc.png", "confusion.png", "examples.png"):
        with Image.open(out / plot) as image:
            assert image.size[0] > 300


def test_report_scores_attacks_the_detector_never_trained_on(built, trained_detector):
    detector, features = trained_detector
    report, _ = build_detection_report(
        detector, built.adversarial, features=features, baselines=False, leave_one_out=False,
        unseen_attacks=["deepfool", "apgd"], unseen_images=24, show_progress=False,
    )  # fmt: skip
    assert [(row.attack, row.eps) for row in report.unseen] == [
        ("deepfool", "L2"),
        ("apgd", "8/255"),
    ]
    apgd = report.unseen[1]
    assert apgd.images == 24 and apgd.successful > 0
    assert 0 <= apgd.auroc <= 1 and 0 <= apgd.auroc_successful <= 1 and 0 <= apgd.tpr <= 1
    markdown = report_markdown(report)
    assert "never trained on" in markdown and "| apgd | 8/255 | 24 |" in markdown


def test_unseen_attacks_must_be_unknown_to_the_detector():
    check_unseen_attacks(["square"], ["fgsm", "pgd"])
    with pytest.raises(ValueError, match="trained on pgd"):
        check_unseen_attacks(["pgd"], ["fgsm", "pgd"])
    with pytest.raises(ValueError, match="unknown attack"):
        check_unseen_attacks(["zap"], ["fgsm"])


def test_attack_families():
    assert attack_family("fgsm") == "single-step L∞"
    assert attack_family("mim") == attack_family("pgd") == "iterative L∞"
    assert attack_family("cw") == "L2"


def test_features_are_differentiable(built, trained_detector):
    detector, _ = trained_detector
    images = built.adversarial.float_images(torch.arange(4)).requires_grad_(True)
    logits = detector(images)
    (gradient,) = torch.autograd.grad(logits[:, 0].sum(), images)
    assert gradient.abs().sum() > 0
    assert extract_features(detector.features, images.detach(), show_progress=False).shape[0] == 4


def test_report_without_successful_attacks(built, trained_detector):
    """A set where no attack succeeded still gives a report (an all-zero confusion)."""
    detector, features = trained_detector
    adversarial = built.adversarial
    none_succeeded = AdversarialSet(
        adversarial.images,
        [replace(row, success=False) for row in adversarial.rows],
        adversarial.class_names,
        adversarial.attack_names,
    )
    report, _ = build_detection_report(
        detector, none_succeeded, features=features, baselines=False,
        leave_one_out=False, show_progress=False,
    )  # fmt: skip
    assert [sum(row) for row in report.guard_confusion] == [report.clean_images, 0, 0, 0]
    assert report.naming_accuracy != report.naming_accuracy  # NaN: nothing to name


def test_the_detector_learns_on_the_images_held_out_from_the_classifier(
    trained_small, small_bundled, tmp_path
):
    splits = {name: small_bundled[name] for name in ("train", "test")}
    held_out = splits["train"].files[::5]
    config = BuildConfig(
        specs=[AttackSpec("fgsm", {"eps": 8 / 255})], noise_epsilons=[8 / 255],
        holdout_files=held_out,
    )  # fmt: skip
    adversarial = build_adversarial_set(
        trained_small.model, splits, tmp_path / "set", config, show_progress=False
    )
    train_sources = {row.source_file for row in adversarial.rows if row.split == "train"}
    assert train_sources == set(held_out)
    test_clean = [row for row in adversarial.rows if row.split == "test" and row.attack == CLEAN]
    assert len(test_clean) == len(splits["test"])  # the test split is untouched
    info = json.loads((tmp_path / "set" / "build.json").read_text())
    assert (
        info["detector_images"]
        == f"the {len(held_out)} training images held out from the classifier"
    )
    assert info["images"] == len(adversarial)
    # A classifier trained on other images than this dataset's is refused, not mixed in.
    stranger = replace(config, holdout_files=[*held_out, "elsewhere/scan.png"])
    with pytest.raises(ValueError, match="1 of the classifier's"):
        build_adversarial_set(
            trained_small.model, splits, tmp_path / "other", stranger, show_progress=False
        )


def test_clean_density_learns_on_clean_images_alone_and_flags_attacks(built, trained_detector):
    """Fitted on clean training images only, never on an attack, the density scores PGD
    images above clean test images: the part of the guard that needs no attack to learn.

    (On this 32×32 synthetic model it does not separate Square, which barely moves the
    classifier's reaction here; on brain-mri-4class it does, with AUROC 0.99: README.)
    """
    detector, features = trained_detector
    adversarial = built.adversarial
    clean_train = adversarial.where(lambda r: r.split == "train" and r.attack == CLEAN)
    density = CleanDensity(detector.features.classifier_columns).fit(features[clean_train])
    assert torch.allclose(density.precision, detector.density.precision)
    clean_test = adversarial.where(lambda r: r.split == "test" and r.attack == CLEAN)
    pgd = adversarial.where(lambda r: r.split == "test" and r.attack == "pgd" and r.success)
    with torch.no_grad():
        pgd_auroc = auroc(density(features[clean_test]), density(features[pgd]))
    assert len(pgd) >= 10 and pgd_auroc >= 0.9, pgd_auroc
    assert not CleanDensity(detector.features.classifier_columns).fitted


def test_combined_score_is_the_density_plus_the_heads_excess(built, trained_detector):
    """The clean density decides; the head adds a share of its score beyond its clean tail
    and never takes anything away, so an attack the head finds clean-looking is judged by
    the density alone."""
    detector, features = trained_detector
    rows = features[:: max(1, len(features) // 200)]
    with torch.no_grad():
        parts = [head_log_odds(detector.head(rows)), detector.density(rows)]
        combined = detector.log_odds(rows)
    head, density = (
        (part - detector.clean_scale[row, 1])
        / (detector.clean_scale[row, 1] - detector.clean_scale[row, 0])
        for row, part in enumerate(parts)
    )
    assert bool((combined >= density * SHARPNESS - 1e-5).all())
    quiet = head <= 0
    assert bool(quiet.any()) and bool((~quiet).any())
    assert torch.allclose(combined[quiet], density[quiet] * SHARPNESS, atol=1e-5)
    expected = (density + HEAD_WEIGHT * head.clamp_min(0)) * SHARPNESS
    assert torch.allclose(combined, expected, atol=1e-5)
    images = built.adversarial.float_images(torch.arange(0, len(built.adversarial), 53))
    detection = detector.detect(images)
    with torch.no_grad():
        expected = detector.log_odds(detector.features(images)).sigmoid()
    assert torch.allclose(detection.score, expected, atol=1e-5)
    assert torch.equal(detection.is_adversarial, detection.score > detector.threshold)


def test_rician_controls_look_like_scanner_noise():
    """The noise controls are what an MR scanner adds, not ±ε sign noise: Rician (the black
    background rises to about 1.25σ, the tissue keeps its level with σ of spread) and
    correlated between neighbouring pixels, unlike an attack's pixel-by-pixel pattern."""
    generator = torch.Generator().manual_seed(0)
    images = torch.zeros(4, 1, 48, 48)
    images[:, :, 12:36, 12:36] = 0.6
    sigma = 8 / 255
    noisy = rician_noise(images, sigma, generator)
    assert noisy.shape == images.shape and float(noisy.min()) >= 0 and float(noisy.max()) <= 1
    background = noisy[images == 0]
    assert float(background.mean()) == pytest.approx(1.2533 * sigma, rel=0.2)
    tissue = noisy[:, :, 16:32, 16:32] - 0.6
    assert abs(float(tissue.mean())) < 0.2 * sigma
    assert float(tissue.std()) == pytest.approx(sigma, rel=0.3)
    neighbours = torch.stack([tissue[..., :-1].flatten(), tissue[..., 1:].flatten()])
    assert float(torch.corrcoef(neighbours)[0, 1]) > 0.3


def test_building_a_set_reports_images_as_they_are_made(trained_small, small_bundled, tmp_path):
    """Progress counts images over the whole build, inside a long attack too, never going
    back, and ends at the set's size (also without a terminal bar to count them)."""
    splits = {name: small_bundled[name] for name in ("train", "test")}
    config = BuildConfig(
        specs=[AttackSpec("pgd", {"eps": 8 / 255, "alpha": 2 / 255})],
        noise_epsilons=[8 / 255],
        batch_size=16,
    )
    seen: list[tuple[int, int]] = []
    adversarial = build_adversarial_set(
        trained_small.model,
        splits,
        tmp_path / "set",
        config,
        progress=lambda _stage, done, total: seen.append((done, total)),
        show_progress=False,
    )
    done = [count for count, _ in seen]
    assert done == sorted(done)
    assert seen[-1] == (len(adversarial), len(adversarial))
    attacked = len([row for row in adversarial.rows if row.attack == "pgd"])
    # More reports than parts: the PGD parts report batch by batch while they run.
    assert len(set(done)) > len({row.split + row.attack for row in adversarial.rows})
    assert attacked > 16
