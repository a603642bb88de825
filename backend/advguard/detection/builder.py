"""The adversarial dataset: clean, attacked and noise-control images as 8-bit PNG + manifest.

Everything is quantised to 8 bits, the clean images included, so that a detector trained
on it learns the perturbation and not the file format. Attacks run on the quantised clean
image, and L∞/L2 are measured after quantisation. Splits follow the source dataset's own
train/test split, so no source image is on both sides.
"""

from __future__ import annotations

import csv
import functools
import itertools
import json
import math
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from advguard.attacks import ATTACKS, create_attack, format_eps, run_attack
from advguard.data.dataset import ImageDataset
from advguard.data.images import decode_image, save_png, to_uint8
from advguard.models.training import augment_batch, predict_labels

CLEAN = "clean"
NOISE_RICIAN = "noise_rician"
NOISE_GAUSSIAN = "noise_gaussian"
NOISE_SIGN = "noise_sign"
NOISE_CONTROLS = (NOISE_RICIAN, NOISE_GAUSSIAN)
"""The noise controls a set is built with: what an MR scanner adds (see
:func:`rician_noise`) and plain Gaussian noise."""
AUGMENTED = "augmented"
CONTROLS = (*NOISE_CONTROLS, NOISE_SIGN, AUGMENTED)
"""Images labelled clean that are not the source images themselves (``noise_sign``, ±ε
sign noise, only in sets built before it was dropped: it taught the detector that a ±ε
pattern is clean, which is what FGSM and Square leave)."""
MANIFEST = "manifest.csv"
BUILD_INFO = "build.json"
FAMILIES = {"fgsm": "single-step L∞", "bim": "iterative L∞", "pgd": "iterative L∞"}
FAMILIES |= {"mim": "iterative L∞", "cw": "L2"}
DEFAULT_EPSILONS = (2 / 255, 4 / 255, 8 / 255)
"""The L∞ budgets of an adversarial set when none are named."""

ProgressCallback = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: what long work says as it goes."""


def silent_if_none(progress: ProgressCallback | None) -> ProgressCallback:
    """``progress``, or a callback that says nothing (so callers need not check)."""
    return progress or (lambda _stage, _done, _total: None)


def attack_family(name: str) -> str:
    """Single-step L∞, iterative L∞ or L2 (falls back to the attack's norm)."""
    return FAMILIES.get(name, f"other {ATTACKS[name].norm}" if name in ATTACKS else name)


@dataclass(frozen=True)
class AttackSpec:
    """One attack at one budget, as the builder runs it."""

    name: str
    params: dict[str, object] = field(default_factory=dict, hash=False)

    @property
    def eps(self) -> float | None:
        eps = self.params.get("eps")
        return float(eps) if isinstance(eps, int | float) else None

    @property
    def label(self) -> str:
        return f"{self.name} {format_eps(self.eps)}" if self.eps is not None else self.name


DETECTOR_ATTACKS = ("fgsm", "bim", "pgd", "mim", "cw")
"""The attacks an adversarial set (and so a detector) has when none are named."""


def default_attack_specs(
    attacks: Sequence[str] = DETECTOR_ATTACKS,
    epsilons: Sequence[float] = DEFAULT_EPSILONS,
) -> list[AttackSpec]:
    """Each L∞ attack at each ε, set to it by its own rule (:meth:`Attack.budget_params`:
    step-size attacks take ``2.5·ε/steps``, so iterative attacks do not all land on the
    ball's corners), L2 attacks once at their defaults."""
    specs = []
    for name in attacks:
        if name not in ATTACKS:
            raise ValueError(f"unknown attack {name!r}; known: {', '.join(sorted(ATTACKS))}")
        if ATTACKS[name].norm != "linf":
            specs.append(AttackSpec(name))
            continue
        specs += [AttackSpec(name, ATTACKS[name].budget_params(eps)) for eps in epsilons]
    return specs


@dataclass
class BuildConfig:
    """What to generate: attack specs, the share of source images each one gets, controls."""

    specs: list[AttackSpec] = field(default_factory=default_attack_specs)
    fraction: float = 1.0
    """Share of each split's source images attacked by every spec (drawn per spec)."""
    noise_epsilons: Sequence[float] = DEFAULT_EPSILONS
    """Noise controls: scanner-like Rician noise and Gaussian noise, both of σ = ε."""
    augmented_controls: bool = True
    """Also randomly flipped, rotated, zoomed and contrast-changed copies, labelled clean:
    new views of known images, on which the classifier is as unsure as on unseen scans, so
    that the detector does not learn "unsure means attacked"."""
    batch_size: int = 128
    seed: int = 0
    holdout_files: list[str] | None = None
    """The training images the classifier never trained on (its ``holdout.json``): the
    set's train split, on which the detector learns, is made of these alone, so that
    "clean" means a scan as new to the classifier as the ones it will serve. ``None``
    (a classifier that does not say) takes the whole train split."""

    def __post_init__(self) -> None:
        if not 0 < self.fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {self.fraction}")

    def source_splits(self, splits: dict[str, ImageDataset]) -> dict[str, ImageDataset]:
        """The dataset's splits as the set is made from them: the train split cut down to
        :attr:`holdout_files` when they are known."""
        if self.holdout_files is None or "train" not in splits:
            return splits
        train = splits["train"]
        held_out = set(self.holdout_files)
        index = torch.tensor([i for i, name in enumerate(train.files) if name in held_out])
        if len(index) < len(held_out):
            raise ValueError(
                f"{len(held_out) - len(index)} of the classifier's {len(held_out)} held-out "
                "training images are not in this dataset's train split: was it trained on "
                "another dataset?"
            )
        return {**splits, "train": train.subset(index)}

    def detector_images(self) -> str:
        """Where the set's train split comes from, as ``build.json`` records it."""
        if self.holdout_files is None:
            return "the whole train split (the classifier may have trained on these images)"
        return f"the {len(self.holdout_files)} training images held out from the classifier"


@dataclass
class ManifestRow:
    """One image of the adversarial set (``attack`` is ``clean`` or a noise control too)."""

    file: str
    split: str
    source_file: str
    source_id: int
    true_label: str
    attack: str
    params: str
    eps: float
    predicted_before: str
    predicted_after: str
    success: bool
    linf: float
    l2: float

    @property
    def is_attack(self) -> bool:
        return self.attack not in (CLEAN, *CONTROLS)


@dataclass
class AdversarialSet:
    """An adversarial dataset in memory: 8-bit images and one manifest row each."""

    images: Tensor
    rows: list[ManifestRow]
    class_names: list[str]
    attack_names: list[str]

    def __len__(self) -> int:
        return len(self.rows)

    def float_images(self, index: Tensor | None = None) -> Tensor:
        """Images (all, or at ``index``) as float32 in [0, 1]."""
        images = self.images if index is None else self.images[index]
        return images.float().div_(255.0)

    def subset(self, index: Tensor) -> AdversarialSet:
        """The rows at ``index``; ``attack_names`` keeps only the attacks still present."""
        rows = [self.rows[i] for i in index.tolist()]
        present = {row.attack for row in rows}
        names = [name for name in self.attack_names if name in present]
        return AdversarialSet(self.images[index], rows, self.class_names, names)

    def where(self, predicate: Callable[[ManifestRow], bool]) -> Tensor:
        """Positions of the rows for which ``predicate`` holds."""
        return torch.tensor(
            [i for i, row in enumerate(self.rows) if predicate(row)], dtype=torch.long
        )

    def detector_targets(self) -> Tensor:
        """0 for clean images and controls, else 1 + the attack's index in ``attack_names``."""
        return torch.tensor(
            [self.attack_names.index(r.attack) + 1 if r.is_attack else 0 for r in self.rows]
        )


def _quantised(images: Tensor) -> Tensor:
    return to_uint8(images).float() / 255.0


def _draw(population: int, count: int, generator: torch.Generator) -> Tensor:
    """``count`` distinct positions out of ``population``, in ascending order."""
    return torch.randperm(population, generator=generator)[:count].sort().values


def rician_noise(images: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """``images`` as a magnitude MR image with noise of level ``sigma``: ``|x + σ(n₁ +
    i·n₂)|``, where n₁, n₂ are Gaussian fields smoothed over 0.5–1.5 pixels (per image) and
    scaled back to unit variance.

    A scanner's noise is Gaussian in each of the real and imaginary channels and becomes
    Rician in the magnitude image: biased upwards where the signal is low (the black
    background turns grey), Gaussian where it is high; reconstruction and resizing
    correlate it between neighbouring pixels. Nothing about it follows the classifier.
    """
    n = len(images)
    reach = torch.rand(n, generator=generator) + 0.5
    offsets = torch.arange(-3, 4, dtype=images.dtype)
    kernels = torch.exp(-(offsets[None] ** 2) / (2 * reach[:, None] ** 2))
    kernels = kernels / kernels.sum(1, keepdim=True)

    def field() -> Tensor:
        white = torch.randn(images.shape, generator=generator, dtype=images.dtype)
        smooth = _separable_blur(white, kernels)
        return smooth / smooth.flatten(1).std(1).clamp_min(1e-12)[:, None, None, None]

    real, imaginary = images + sigma * field(), sigma * field()
    return (real**2 + imaginary**2).sqrt().clamp(0.0, 1.0)


def _separable_blur(images: Tensor, kernels: Tensor) -> Tensor:
    """Blur each image ``N×C×H×W`` with its own 1-D kernel (``N×K``) along both axes."""
    n, c, h, w = images.shape
    k = kernels.shape[1]
    pad = k // 2
    planes = images.reshape(1, n * c, h, w)
    weights = kernels.repeat_interleave(c, 0)
    rows = F.conv2d(
        F.pad(planes, (pad, pad, 0, 0), mode="reflect"), weights[:, None, None, :], groups=n * c
    )
    both = F.conv2d(
        F.pad(rows, (0, 0, pad, pad), mode="reflect"), weights[:, None, :, None], groups=n * c
    )
    return both.reshape(n, c, h, w)


def _noise_control(images: Tensor, kind: str, eps: float, generator: torch.Generator) -> Tensor:
    if kind == NOISE_RICIAN:
        return _quantised(rician_noise(images, eps, generator))
    noise = torch.randn(images.shape, generator=generator)
    return _quantised((images + eps * noise).clamp(0.0, 1.0))


class _Writer:
    """Writes image batches as PNG and collects their manifest rows, with progress."""

    def __init__(self, out: Path, total: int, progress: ProgressCallback | None, show: bool):
        self.out = out
        self.total = total
        self.progress = progress
        self.bar = tqdm(total=total, desc="adversarial set", unit="img", disable=not show)
        # Counted here, not by the bar: a disabled tqdm bar does not count.
        self.written = 0
        self.images: list[Tensor] = []
        self.rows: list[ManifestRow] = []

    def add(
        self,
        source: _Source,
        kind: str,
        attack: str,
        params: dict[str, object],
        index: Tensor,
        images: Tensor,
        predicted_after: Tensor,
    ) -> None:
        """Record ``images`` (already on the 8-bit grid), made from ``source`` at ``index``."""
        folder = f"{source.split}/{kind.replace(' ', '_').replace('/', '-')}"
        (self.out / folder).mkdir(parents=True, exist_ok=True)
        pixels = to_uint8(images)
        perturbation = (images - source.images[index]).flatten(1)
        eps = params.get("eps")
        labels = source.labels[index]
        for k, position in enumerate(index.tolist()):
            file_name = f"{folder}/{position:05d}.png"
            save_png(images[k], str(self.out / file_name))
            self.rows.append(
                ManifestRow(
                    file=file_name,
                    split=source.split,
                    source_file=source.files[position],
                    source_id=source.first_id + position,
                    true_label=source.class_names[int(labels[k])],
                    attack=attack,
                    params=json.dumps(params, sort_keys=True),
                    eps=float(eps) if isinstance(eps, int | float) else float("nan"),
                    predicted_before=source.class_names[int(source.predicted[position])],
                    predicted_after=source.class_names[int(predicted_after[k])],
                    success=attack != CLEAN and bool(predicted_after[k] != labels[k]),
                    linf=float(perturbation[k].abs().max()),
                    l2=float(perturbation[k].norm()),
                )
            )
        self.images.append(pixels)
        self.bar.update(len(index))
        self.written += len(index)
        self.report(kind, 0)

    def report(self, kind: str, pending: int) -> None:
        """Progress: the images written, and ``pending`` more of a part still being made
        (attacked but not yet written), so that a long attack moves the count too."""
        if self.progress is not None:
            self.progress(kind, self.written + pending, self.total)


def _report_attacked(writer: _Writer, kind: str, done: int, _total: int) -> None:
    writer.report(kind, done)


@dataclass
class _Source:
    """One split's clean images on the 8-bit grid, with the model's predictions."""

    split: str
    images: Tensor
    labels: Tensor
    files: list[str]
    class_names: list[str]
    predicted: Tensor
    first_id: int


@dataclass(frozen=True)
class BuildPart:
    """One unit of a build: the clean images, one control or one attack spec, on one split.

    Parts are independent (each draws from its own seeded generator), so a build can be
    split into chunks that run on different workers and still give the same set.
    """

    split: str
    kind: str
    """``clean``, a noise control, ``augmented`` or ``attack``."""
    spec: AttackSpec | None = None
    eps: float | None = None
    """The noise controls' budget."""

    @property
    def label(self) -> str:
        if self.spec is not None:
            return self.spec.label
        return f"{self.kind} {format_eps(self.eps)}" if self.eps is not None else self.kind


def plan_build(split_names: Sequence[str], config: BuildConfig) -> list[BuildPart]:
    """Every part of a build, in the order of the manifest."""
    parts = []
    for split in split_names:
        parts.append(BuildPart(split, CLEAN))
        parts += [
            BuildPart(split, kind, eps=eps)
            for kind in NOISE_CONTROLS
            for eps in config.noise_epsilons
        ]
        if config.augmented_controls:
            parts.append(BuildPart(split, AUGMENTED))
        parts += [BuildPart(split, "attack", spec=spec) for spec in config.specs]
    return parts


def part_sizes(split_sizes: dict[str, int], config: BuildConfig) -> list[int]:
    """How many images each part of :func:`plan_build` makes, for splits of these sizes."""
    return [
        split_sizes[part.split]
        if part.kind == CLEAN
        else math.ceil(split_sizes[part.split] * config.fraction)
        for part in plan_build(list(split_sizes), config)
    ]


def build_parts(
    model: nn.Module,
    splits: dict[str, ImageDataset],
    out: str | Path,
    config: BuildConfig,
    part_indices: Sequence[int] | None = None,
    *,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> AdversarialSet:
    """Make the parts at ``part_indices`` of :func:`plan_build` (all by default): write their
    PNGs under ``out/<split>/<kind>/`` and return them in memory (no manifest written).
    ``splits`` are the dataset's; :meth:`BuildConfig.source_splits` picks the images.

    ``progress(stage, done, total)`` counts images written over these parts.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = config.source_splits(splits)
    plan = plan_build(list(splits), config)
    chosen = range(len(plan)) if part_indices is None else part_indices
    class_names = next(iter(splits.values())).class_names
    per_spec = {name: math.ceil(len(d) * config.fraction) for name, d in splits.items()}
    sizes = part_sizes({name: len(d) for name, d in splits.items()}, config)
    writer = _Writer(out, sum(sizes[i] for i in chosen), progress, show_progress)
    first_ids = dict(
        zip(splits, itertools.accumulate([0, *map(len, splits.values())]), strict=False)
    )
    sources: dict[str, _Source] = {}
    for part_index in chosen:
        part = plan[part_index]
        dataset = splits[part.split]
        if part.split not in sources:
            images = _quantised(dataset.images)
            predicted = predict_labels(model, images)
            sources[part.split] = _Source(
                part.split,
                images,
                dataset.labels,
                dataset.files,
                class_names,
                predicted,
                first_ids[part.split],
            )
        source = sources[part.split]
        generator = torch.Generator().manual_seed(config.seed * 1_000_003 + part_index)
        if part.kind == CLEAN:
            index = torch.arange(len(source.images))
            writer.add(source, CLEAN, CLEAN, {}, index, source.images, source.predicted)
            continue
        index = _draw(len(source.images), per_spec[part.split], generator)
        if part.kind in NOISE_CONTROLS:
            assert part.eps is not None
            made = _noise_control(source.images[index], part.kind, part.eps, generator)
            params: dict[str, object] = {"eps": part.eps}
        elif part.kind == AUGMENTED:
            made = _quantised(augment_batch(source.images[index], generator))
            params = {}
        else:
            assert part.spec is not None
            attack = create_attack(part.spec.name, model, seed=config.seed, **part.spec.params)
            subset = ImageDataset(source.images[index], source.labels[index], class_names)
            outcome = run_attack(
                model,
                attack,
                subset,
                batch_size=config.batch_size,
                quantize=True,
                predicted_before=source.predicted[index],
                progress=functools.partial(_report_attacked, writer, part.label),
                show_progress=False,
            )
            writer.add(
                source,
                part.label,
                part.spec.name,
                attack.params(),
                index,
                outcome.adversarial,
                outcome.predicted_after,
            )
            continue
        after = predict_labels(model, made)
        writer.add(source, part.label, part.kind, params, index, made, after)
    writer.bar.close()
    attack_names = list(dict.fromkeys(spec.name for spec in config.specs))
    channels = next(iter(splits.values())).channels
    images = torch.cat(writer.images) if writer.images else torch.empty(0, channels, 0, 0)
    return AdversarialSet(images.to(torch.uint8), writer.rows, class_names, attack_names)


def build_adversarial_set(
    model: nn.Module,
    splits: dict[str, ImageDataset],
    out: str | Path,
    config: BuildConfig | None = None,
    *,
    progress: ProgressCallback | None = None,
    show_progress: bool = True,
) -> AdversarialSet:
    """Attack each split's images with every spec; write ``out/<split>/<kind>/*.png`` and
    ``out/manifest.csv`` and return the set in memory.

    ``progress(stage, done, total)`` counts images written over the whole build.
    """
    config = config or BuildConfig()
    adversarial = build_parts(
        model, splits, out, config, progress=progress, show_progress=show_progress
    )
    write_manifest(Path(out), adversarial, config)
    return adversarial


def _write_rows(path: Path, rows: Sequence[ManifestRow]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(ManifestRow)])
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)


def _read_rows(path: Path) -> list[ManifestRow]:
    with open(path, newline="") as handle:
        raw_rows = list(csv.DictReader(handle))
    # Field types are strings under postponed annotations: "bool", "float", "int", "str".
    parse: dict[str, Callable[[str], Any]] = {
        "bool": lambda text: text == "True",
        "float": float,
        "int": int,
        "str": str,
    }
    types = {f.name: str(f.type) for f in fields(ManifestRow)}
    rows = []
    for raw in raw_rows:
        try:
            rows.append(
                ManifestRow(**{name: parse[types[name]](text) for name, text in raw.items()})
            )
        except (KeyError, ValueError, TypeError) as error:
            raise AdversarialSetError(f"bad manifest row {raw}: {error}") from error
    return rows


def _write_info(
    out: Path, class_names: list[str], config: BuildConfig, channels: int, rows: int
) -> None:
    info = {
        "class_names": class_names,
        "attack_names": list(dict.fromkeys(spec.name for spec in config.specs)),
        "channels": channels,
        "images": rows,
        "detector_images": config.detector_images(),
    }
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2))


def write_manifest(out: Path, adversarial: AdversarialSet, config: BuildConfig) -> None:
    """Write ``manifest.csv`` (one row per image) and ``build.json`` (classes, attacks, and
    where the detector's training images come from)."""
    _write_rows(out / MANIFEST, adversarial.rows)
    channels = int(adversarial.images.shape[1])
    _write_info(out, adversarial.class_names, config, channels, len(adversarial))


PARTS_FOLDER = "parts"


def write_chunk_manifest(out: str | Path, chunk: int, adversarial: AdversarialSet) -> Path:
    """Save the rows one chunk of a split build made, for :func:`merge_chunk_manifests`."""
    folder = Path(out) / PARTS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"chunk-{chunk:04d}.csv"
    _write_rows(path, adversarial.rows)
    return path


def merge_chunk_manifests(
    out: str | Path, chunks: int, class_names: list[str], config: BuildConfig, channels: int
) -> int:
    """Join the chunks' rows (in chunk order, which is manifest order when chunks hold
    consecutive parts) into ``manifest.csv`` and ``build.json``; return the row count."""
    out = Path(out)
    rows: list[ManifestRow] = []
    for chunk in range(chunks):
        path = out / PARTS_FOLDER / f"chunk-{chunk:04d}.csv"
        if not path.exists():
            raise AdversarialSetError(f"chunk {chunk} of the build is missing ({path})")
        rows += _read_rows(path)
    _write_rows(out / MANIFEST, rows)
    _write_info(out, class_names, config, channels, len(rows))
    shutil.rmtree(out / PARTS_FOLDER)
    return len(rows)


class AdversarialSetError(ValueError):
    """A folder that is not a readable adversarial set; the message says why."""


def load_adversarial_set(directory: str | Path) -> AdversarialSet:
    """Read a set written by :func:`build_adversarial_set` back from its PNGs and manifest."""
    directory = Path(directory)
    try:
        info = json.loads((directory / BUILD_INFO).read_text())
        rows = _read_rows(directory / MANIFEST)
    except (OSError, json.JSONDecodeError) as error:
        raise AdversarialSetError(f"{directory} is not an adversarial set: {error}") from error
    images = []
    for row in rows:
        path = directory / row.file
        if not path.resolve().is_relative_to(directory.resolve()):
            raise AdversarialSetError(f"manifest path {row.file!r} leaves the set's folder")
        images.append(to_uint8(decode_image(path.read_bytes(), channels=info["channels"])))
    stacked = torch.stack(images) if images else torch.empty(0, dtype=torch.uint8)
    return AdversarialSet(stacked, rows, info["class_names"], info["attack_names"])


def export_zip(directory: str | Path, zip_path: str | Path) -> Path:
    """Pack an adversarial set folder (images, manifest, build info) into one zip."""
    directory, zip_path = Path(directory), Path(zip_path)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file() and path.resolve() != zip_path.resolve():
                archive.write(path, path.relative_to(directory).as_posix())
    return zip_path
