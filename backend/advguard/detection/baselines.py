"""Published detectors to compare against: Feature Squeezing and Mahalanobis.

Both give a score per image (higher = more likely adversarial); the report turns scores
into AUROC, so no threshold is needed here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from advguard.defenses import bit_depth_reduce, median_filter
from advguard.models.training import predict_logits


class FeatureSqueezing:
    """Xu et al. 2018 (arXiv:1704.01155): the largest L1 distance between the classifier's
    probabilities on the image and on its squeezed versions (bit depth, median). No training.
    """

    def __init__(self, classifier: nn.Module, bits: int = 5, median_size: int = 2) -> None:
        self.classifier = classifier
        self.bits = bits
        self.median_size = median_size

    @torch.no_grad()
    def score(self, images: Tensor) -> Tensor:
        original = predict_logits(self.classifier, images).softmax(1)
        distances = [
            (original - predict_logits(self.classifier, squeezed).softmax(1)).abs().sum(1)
            for squeezed in (
                bit_depth_reduce(images, self.bits),
                median_filter(images, self.median_size),
            )
        ]
        return torch.stack(distances, 1).amax(1)


def _penultimate_layer(classifier: nn.Module) -> nn.Module | None:
    linear = [m for m in classifier.modules() if isinstance(m, nn.Linear)]
    return linear[-1] if linear else None


class Mahalanobis:
    """Lee et al. 2018 (arXiv:1807.03888), on the classifier's penultimate features:
    class means and one shared covariance fitted on clean training images; the score is
    the Mahalanobis distance to the closest class mean. Falls back to the logits when the
    classifier has no ``nn.Linear`` head to hook (e.g. TorchScript).
    """

    def __init__(self, classifier: nn.Module) -> None:
        self.classifier = classifier
        self.means: Tensor | None = None
        self.precision: Tensor | None = None

    @torch.no_grad()
    def embed(self, images: Tensor, batch_size: int = 256) -> Tensor:
        layer = _penultimate_layer(self.classifier)
        captured: list[Tensor] = []
        handle = None
        if layer is not None:
            handle = layer.register_forward_pre_hook(lambda _, args: captured.append(args[0]))
        try:
            logits = predict_logits(self.classifier, images, batch_size)
        finally:
            if handle is not None:
                handle.remove()
        return torch.cat(captured).cpu() if captured else logits

    def fit(self, images: Tensor, labels: Tensor, num_classes: int) -> Mahalanobis:
        features = self.embed(images).double()
        self.means = torch.stack([features[labels == k].mean(0) for k in range(num_classes)])
        centred = features - self.means[labels]
        covariance = centred.T @ centred / len(features)
        # A small ridge keeps the inverse stable when features are nearly collinear.
        ridge = (
            1e-6 * covariance.diagonal().mean() * torch.eye(len(covariance), dtype=torch.float64)
        )
        self.precision = torch.linalg.inv(covariance + ridge)
        return self

    def score(self, images: Tensor) -> Tensor:
        if self.means is None or self.precision is None:
            raise RuntimeError("call fit() first")
        features = self.embed(images).double()
        differences = features[:, None, :] - self.means[None]
        distances = torch.einsum("nkd,de,nke->nk", differences, self.precision, differences)
        return distances.amin(1).float()
