"""What the detector looks at: high-pass residual statistics and the classifier's reaction.

Adversarial perturbations are small, dense and high-frequency. On an 8-bit image they show
up in the distribution of steganalysis residuals (the image minus a prediction of each
pixel from its neighbours, Fridrich & Kodovský 2012) and in the darkest and brightest
pixels, where clipping leaves each attack's own signature (FGSM moves black background to
exactly ε, iterative attacks to multiples of their step). The classifier adds what the
pixels cannot: how much its answer moves when the input is median-filtered (feature
squeezing, Xu et al. 2018) or moved by two pixels (an augmented neighbour, as in BEYOND, He
et al. 2024: a clean scan keeps its answer, an image pushed just past the decision
boundary, as query attacks such as Square leave it, does not), and whether the residual
follows its gradient, as a perturbation made from that gradient does. Every feature is
differentiable (soft histograms, the median through the pixel it picks) and deterministic,
so an adaptive attack can follow the detector's gradient without averaging over
randomness.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advguard.defenses import median_filter

# Residual kernels in units of 8-bit grey levels, padded to 5×5 (SRM's first- and
# second-order differences, and the KV 3×3 and 5×5 predictors).
_KERNELS_5X5 = [
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, -1, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, -1, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]],
    [[0, 0, 0, 0, 0], [0, 0, 0, 0, 0], [0, 1, -2, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]],
    [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, -2, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]],
    [
        [0, 0, 0, 0, 0],
        [0, -0.25, 0.5, -0.25, 0],
        [0, 0.5, -1, 0.5, 0],
        [0, -0.25, 0.5, -0.25, 0],
        [0, 0, 0, 0, 0],
    ],
    [
        [v / 12 for v in row]
        for row in [
            [-1, 2, -2, 2, -1],
            [2, -6, 8, -6, 2],
            [-2, 8, -12, 8, -2],
            [2, -6, 8, -6, 2],
            [-1, 2, -2, 2, -1],
        ]
    ],
]
RESIDUAL_RANGE = 12
"""Residual histograms have one bin per grey level in [-12, 12]; larger values pile up at
the ends."""
TAIL_LEVELS = 24
"""Intensity histograms of the darkest and brightest 24 grey levels (and one "rest" bin)."""
GRADIENT_CLASSES = 2
"""Input gradients are taken for this many of each image's likeliest classes."""
NEIGHBOUR_SHIFT = 0.03
"""The neighbour is the image translated by this fraction of its half-width along both
axes (1.9 pixels at 128 px), bilinearly. Measured on brain-mri-4class with the clean
density: of nine neighbours (flip, shift, rotation, zoom, blur, down-and-up sampling,
noise, median, 5-bit), the shift alone took Square 8/255 from 0.974 to 0.987 AUROC (42 %
→ 74 % caught) with no loss elsewhere and fewer clean scans rejected than the flip; all
nine together gave 0.988 for nine passes instead of one. It replaced the 5-bit squeezer
(same cost, one forward pass): without the squeezer the density kept Square at 0.985 and
CW went from 0.974 to 0.980."""
PAIRED_BATCH_LIMIT = 2
"""Batches of at most this many images go through the classifier with their medians (one
pass instead of two): 1.4–1.5× faster for one image, no measurable gain at 2–4 images, and
slower at 8 or more with glibc's untuned allocator (twice the memory per pass)."""


def soft_histogram(values: Tensor, low: float, bins: int) -> Tensor:
    """Normalised histogram of each row of ``values`` over unit bins ``low, low+1, …``.

    Each value is split linearly between its two nearest bins, so the result is
    differentiable in the values; values beyond the range count in the end bins.
    """
    position = (values - low).clamp(0, bins - 1)
    lower = position.detach().floor().clamp_(max=bins - 2)
    upper_share = position - lower
    index = lower.long()
    histogram = values.new_zeros([values.shape[0], bins])
    histogram.scatter_add_(1, index, 1 - upper_share).scatter_add_(1, index + 1, upper_share)
    return histogram / values.shape[1]


def _median3(images: Tensor) -> Tensor:
    """``median_filter(images, 3)``, exactly, with min/max instead of a sort (15–40×
    faster): each pixel's three vertical neighbours are sorted once, then the median of
    the 3×3 window is the median of (largest minimum, median of medians, smallest maximum)
    of its three columns."""
    padded = F.pad(images, [1, 1, 1, 1], mode="reflect")
    top, middle, bottom = padded[..., :-2, :], padded[..., 1:-1, :], padded[..., 2:, :]
    low, high = torch.minimum(top, middle), torch.maximum(top, middle)
    column_min, column_max = torch.minimum(low, bottom), torch.maximum(high, bottom)
    column_median = torch.maximum(low, torch.minimum(high, bottom))
    largest_min = torch.maximum(
        torch.maximum(column_min[..., :-2], column_min[..., 1:-1]), column_min[..., 2:]
    )
    smallest_max = torch.minimum(
        torch.minimum(column_max[..., :-2], column_max[..., 1:-1]), column_max[..., 2:]
    )
    median_of_medians = _median_of_three(
        column_median[..., :-2], column_median[..., 1:-1], column_median[..., 2:]
    )
    return _median_of_three(largest_min, median_of_medians, smallest_max)


def shifted_neighbour(images: Tensor, shift: float = NEIGHBOUR_SHIFT) -> Tensor:
    """``images`` translated by :data:`NEIGHBOUR_SHIFT` of their half-width down and right
    (bilinear, zeros shifted in): a view of the same scan that a clean image's class
    survives and a perturbation tuned to the classifier's exact pixel grid often does not."""
    n, h, w = images.shape[0], images.shape[2], images.shape[3]
    theta = torch.tensor(
        [[1.0, 0.0, shift], [0.0, 1.0, shift]], dtype=images.dtype, device=images.device
    )
    grid = F.affine_grid(theta.expand(n, 2, 3), [n, 1, h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _median_of_three(a: Tensor, b: Tensor, c: Tensor) -> Tensor:
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def high_pass(images: Tensor, kernels: Tensor) -> Tensor:
    """Every residual filter (``kernels``) on every channel, in grey levels: ``N·C×K×H×W``."""
    n, c, h, w = images.shape[0], images.shape[1], images.shape[2], images.shape[3]
    levels = images.reshape(n * c, 1, h, w) * 255.0
    return F.conv2d(F.pad(levels, [2, 2, 2, 2], mode="replicate"), kernels)


def pixel_statistics(
    images: Tensor,
    residuals: Tensor,
    residual_range: int = RESIDUAL_RANGE,
    tail_levels: int = TAIL_LEVELS,
) -> Tensor:
    """Residual histograms and dark/bright intensity histograms, averaged over channels
    (``residuals`` from :func:`high_pass`; the constants are arguments for TorchScript,
    which cannot read globals)."""
    n, c, h, w = images.shape[0], images.shape[1], images.shape[2], images.shape[3]
    k = residuals.shape[1]
    residual_histograms = soft_histogram(
        residuals.reshape(n * c * k, h * w), float(-residual_range), 2 * residual_range + 1
    ).reshape(n * c, -1)
    flat = images.reshape(n * c, h * w) * 255.0
    dark = soft_histogram(flat, 0.0, tail_levels + 1)
    bright = soft_histogram(255.0 - flat, 0.0, tail_levels + 1)
    per_channel = torch.cat([residual_histograms, dark, bright], dim=1)
    return per_channel.reshape(n, c, -1).mean(1)


def classifier_reaction(
    logits: Tensor, smoothed_logits: Tensor, neighbour_logits: Tensor
) -> Tensor:
    """How far the 3×3 median moves the classifier's probabilities, how much of the
    predicted class survives it, and the shifted neighbour's log-probability of that class
    (``N×3``)."""
    probabilities = logits.softmax(1)
    predicted = probabilities.argmax(1, keepdim=True)
    smoothed = smoothed_logits.softmax(1)
    moves = [
        (probabilities - smoothed).abs().sum(1),
        smoothed.gather(1, predicted).squeeze(1),
        neighbour_logits.log_softmax(1).gather(1, predicted).squeeze(1),
    ]
    return torch.stack(moves, 1)


def gradient_alignment(
    kernels: Tensor, residual: Tensor, gradient_sets: list[list[Tensor]]
) -> Tensor:
    """How well an image's residual matches the residual of ``sign(∇ log p_k)``.

    A gradient-sign attack adds ``±ε·sign(∇)``, so its high-pass residual carries the
    residual of the gradient's sign (a matched filter); natural texture and random
    noise do not. ``residual`` is the image's KV residuals (``N×…``, the last two of
    ``kernels``); per image and per set of gradients: the cosine for each gradient
    (likeliest class first), and the log of the mean gradient magnitude. All directions go
    through one convolution.
    """
    gradients: list[Tensor] = []
    for gradient_set in gradient_sets:
        for gradient in gradient_set:
            gradients.append(gradient)
    directions = torch.cat([g.sign() + g - g.detach() for g in gradients])  # straight-through
    first = gradients[0]
    n, h, w = first.shape[0], first.shape[2], first.shape[3]
    planes = F.pad(directions.reshape(-1, 1, h, w), [2, 2, 2, 2], mode="replicate")
    direction_residuals = F.conv2d(planes, kernels[-2:]).reshape(len(gradients), n, -1)
    cosines = F.cosine_similarity(residual.unsqueeze(0), direction_residuals, dim=2, eps=1e-8)
    columns: list[Tensor] = []
    start = 0
    for gradient_set in gradient_sets:
        end = start + len(gradient_set)
        magnitude = torch.stack([g.abs().flatten(1).mean(1) for g in gradient_set]).mean(0)
        columns.append(cosines[start:end].t())
        columns.append(magnitude.clamp_min(1e-12).log().unsqueeze(1))
        start = end
    return torch.cat(columns, 1)


class DetectorFeatures(nn.Module):
    """Maps images ``N×C×H×W`` in [0, 1] to feature vectors ``N×dim`` (no trainable weights).

    The classifier is used, not trained: its weights are never changed here.
    """

    kernels: Tensor

    def __init__(self, classifier: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.classifier = classifier
        self.num_classes = num_classes
        self.register_buffer("kernels", torch.tensor(_KERNELS_5X5).unsqueeze(1))

    @property
    def dim(self) -> int:
        residual = len(_KERNELS_5X5) * (2 * RESIDUAL_RANGE + 1)
        return residual + 2 * (TAIL_LEVELS + 1) + self.classifier_dim

    @property
    def classifier_dim(self) -> int:
        """Length of :meth:`classifier_features`: the median's move (2), the neighbour's
        agreement (1) and two sets of gradient alignments (a cosine per class rank and a
        magnitude each)."""
        return 3 + 2 * (self.gradient_ranks + 1)

    @property
    def gradient_ranks(self) -> int:
        """How many of each image's likeliest classes the gradients are taken for."""
        return min(GRADIENT_CLASSES, self.num_classes)

    @property
    def classifier_columns(self) -> list[int]:
        """Where :meth:`classifier_features` sit in a feature vector (the last columns)."""
        return list(range(self.dim - self.classifier_dim, self.dim))

    def residuals(self, images: Tensor) -> Tensor:
        """Every residual filter on every channel, in grey levels: ``N·C×6×H×W``."""
        return high_pass(images, self.kernels)

    def pixel_features(self, images: Tensor, residuals: Tensor) -> Tensor:
        """Residual histograms and dark/bright intensity histograms, averaged over channels
        (``residuals`` from :meth:`residuals`)."""
        return pixel_statistics(images, residuals)

    def class_gradients(
        self, images: Tensor, *, second_order: bool = True, classes: Tensor | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """Logits and ``∇ log p_k`` for each image's :data:`GRADIENT_CLASSES` likeliest
        classes k, best first (or for ``classes``, ``N×ranks``, when given).

        A successful untargeted attack pushes the true class just below the class it made
        win, and a targeted one pushes its target to the top, so the two likeliest classes
        hold both; the cost (one backward pass per rank) does not grow with the number of
        classes. The graph is kept (``create_graph``) only when someone differentiates the
        features themselves (adaptive attacks), and not even then with
        ``second_order=False``: the gradients are then constants of the backward pass (same
        values, about 3× cheaper to differentiate). An adaptive attack passes ``classes``
        (the clean image's likeliest) so that the classes do not jump between its steps.
        """
        ranks = self.gradient_ranks
        with torch.enable_grad():
            probe = images if images.requires_grad else images.detach().requires_grad_(True)
            logits = self.classifier(probe)
            log_probabilities = logits.log_softmax(1)
            likeliest = logits.detach().topk(ranks, dim=1).indices if classes is None else classes
            gradients = [
                torch.autograd.grad(
                    log_probabilities.gather(1, likeliest[:, rank : rank + 1]).sum(),
                    probe,
                    retain_graph=images.requires_grad or rank + 1 < ranks,
                    create_graph=images.requires_grad and second_order,
                )[0]
                for rank in range(ranks)
            ]
        return (logits if images.requires_grad else logits.detach()), gradients

    def likeliest_classes(self, images: Tensor) -> Tensor:
        """The classes :meth:`class_gradients` takes for ``images`` (``N×ranks``)."""
        with torch.no_grad():
            logits = self.classifier(images.detach())
        return logits.topk(self.gradient_ranks, dim=1).indices

    def classifier_features(self, images: Tensor) -> Tensor:
        """How far a 3×3 median moves the classifier's probabilities (and how much of the
        predicted class survives it), the log-probability of the predicted class for the
        image's shifted neighbour, and how well the image's
        high-pass residual lines up with the classifier's gradients, taken at the image and
        at its median-filtered version (closer to the clean image after a single large step
        such as FGSM's).

        The classifier's own confidence is left out on purpose: it is higher on the images
        it was trained on (where the detector learns) than on new scans, so a detector
        using it rejects more clean scans in use than on its validation split (measured:
        4–5 % instead of 2 % on brain-mri-4class).
        """
        return self._classifier_features(images, self.residuals(images))[0]

    def _classifier_features(
        self,
        images: Tensor,
        residuals: Tensor,
        second_order: bool = True,
        classes: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """:meth:`classifier_features` and the classifier's logits for ``images``
        (``residuals`` from :meth:`residuals`)."""
        n = len(images)
        if not torch.is_grad_enabled():
            # No one differentiates these features (a verdict, a feature table), though the
            # images may still carry an attack's graph: a view of them taken under no_grad
            # would break the classifier gradients the features take themselves.
            images = images.detach()
        if images.requires_grad or self.classifier.training:
            # The reference path: differentiable (create_graph) for adaptive attacks, and
            # one image set per batch for train-mode classifiers (batch statistics).
            logits, gradients = self.class_gradients(
                images, second_order=second_order, classes=classes
            )
            smoothed_logits, smoothed_gradients = self.class_gradients(
                median_filter(images, 3), second_order=second_order, classes=classes
            )
            neighbour_logits = self.classifier(shifted_neighbour(images))
        else:
            logits, smoothed_logits, gradients, smoothed_gradients = self._paired_gradients(images)
            with torch.no_grad():
                neighbour_logits = self.classifier(shifted_neighbour(images))
        residual = residuals[:, -2:].reshape(n, -1)  # the KV predictors
        alignment = gradient_alignment(self.kernels, residual, [gradients, smoothed_gradients])
        reaction = classifier_reaction(logits, smoothed_logits, neighbour_logits)
        return torch.cat([reaction, alignment], dim=1), logits

    def _paired_gradients(
        self, images: Tensor
    ) -> tuple[Tensor, Tensor, list[Tensor], list[Tensor]]:
        """:meth:`class_gradients` of ``images`` and of their 3×3 median (no graph kept).

        The median is a sorting network (exactly :func:`median_filter`, much faster). Small
        batches go through the classifier together with their medians, as one batch: half
        the forward and backward calls, and no batch of one (PyTorch's slower convolution
        path for small inputs). An eval-mode classifier treats each image on its own, so
        only the rounding changes, as with any other batch composition: one image gets the
        features that separate passes give it in any batch of two or more (the batch-of-one
        path rounds differently, which moves the sign of near-zero gradients and hence the
        alignment cosines by up to ~3e-3 on some images). Larger batches gain nothing from
        pairing and would only need twice the memory.
        """
        images = images.detach()
        smoothed = _median3(images)
        if len(images) > PAIRED_BATCH_LIMIT:
            logits, gradients = self.class_gradients(images)
            smoothed_logits, smoothed_gradients = self.class_gradients(smoothed)
            return logits, smoothed_logits, gradients, smoothed_gradients
        n = len(images)
        both_logits, both_gradients = self.class_gradients(torch.cat([images, smoothed]))
        return (
            both_logits[:n],
            both_logits[n:],
            [g[:n] for g in both_gradients],
            [g[n:] for g in both_gradients],
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.with_logits(images)[0]

    def with_logits(
        self, images: Tensor, *, second_order: bool = True, classes: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The features and the classifier's logits for ``images``, from the same pass (no
        second forward for callers that need both).

        ``second_order=False`` and ``classes`` only matter when ``images.requires_grad``:
        the backward pass then treats the classifier's input gradients as constants, and
        the gradients are taken for ``classes`` instead of each image's likeliest (see
        :meth:`class_gradients`); with ``second_order`` the values returned are the same.
        """
        residuals = self.residuals(images)
        classifier_features, logits = self._classifier_features(
            images, residuals, second_order, classes if images.requires_grad else None
        )
        return torch.cat([self.pixel_features(images, residuals), classifier_features], 1), logits
