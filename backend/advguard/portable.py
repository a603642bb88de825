"""The guard as one TorchScript file, to run in another serving stack without advguard.

>>> export_guard(Guard.load("out/guard", serving=True), "guard.pt")
>>> guard = torch.jit.load("guard.pt")            # plain PyTorch, nothing else installed
>>> with torch.enable_grad():                      # its features need input gradients
...     answer = guard(images)                     # N×C×H×W in [0, 1]
>>> answer["is_adversarial"], answer["class_probabilities"]

The file computes, per batch, what :meth:`advguard.guard.Guard.predict` decides: the
classifier's class probabilities, the adversarial score, the verdict at the saved
threshold and the attack probabilities (``answer`` is a dict of those four tensors). The
class and attack names, the threshold and the input size travel inside it as
``guard.json`` (``torch.jit.load(path, _extra_files={"guard.json": ""})``) and as the
module's attributes ``class_names``, ``attack_names`` and ``threshold``.

The features take the classifier's input gradients, so call the module with autograd on
(wrap the call in ``torch.enable_grad()`` where serving code runs under ``no_grad``); it
refuses otherwise. (Turning autograd on inside the module does not work: TorchScript's
executor picks a plan without gradients for a call made under ``no_grad``, and the second
such call fails.) No parameter is changed and nothing is kept between calls.
"""

import json
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from advguard.detection.density import log_distance
from advguard.detection.detector import combine_scores, head_log_odds
from advguard.detection.features import (
    PAIRED_BATCH_LIMIT,
    _median3,
    classifier_reaction,
    gradient_alignment,
    high_pass,
    pixel_statistics,
    shifted_neighbour,
)
from advguard.guard import Guard

METADATA_FILE = "guard.json"
GRADIENTS_NEEDED = (
    "this guard's features take the classifier's input gradients: call it with autograd "
    "on, e.g. inside torch.enable_grad(), not under torch.no_grad() or inference_mode()"
)
EXPORT_FORMAT = "advguard-guard/1"


class PortableGuard(nn.Module):
    """Detect-then-classify in TorchScript-compatible code: the same features, head,
    clean density and combination as the served guard, for inference only."""

    # (this module has no postponed annotations: TorchScript reads these)
    feature_mean: Tensor
    feature_std: Tensor
    density_columns: Tensor
    density_mean: Tensor
    density_scale: Tensor
    density_precision: Tensor
    kernels: Tensor
    clean_scale: Tensor

    def __init__(self, guard: Guard) -> None:
        super().__init__()
        detector, spec = guard.detector, guard.spec
        classifier = guard.classifier.eval()
        if not isinstance(classifier, torch.jit.ScriptModule):
            example = torch.rand(2, spec.in_channels, spec.image_size, spec.image_size)
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                classifier = torch.jit.trace(classifier, example)
        self.classifier = classifier
        # the head's and the density's tensors, not the modules: TorchScript cannot read
        # their (postponed) annotations
        self.head_mlp = detector.head.mlp.eval()
        for name, tensor in {
            "feature_mean": detector.head.feature_mean,
            "feature_std": detector.head.feature_std,
            "density_columns": detector.density.column_index,
            "density_mean": detector.density.mean,
            "density_scale": detector.density.scale,
            "density_precision": detector.density.precision,
            "kernels": detector.features.kernels,
        }.items():
            self.register_buffer(name, tensor.detach().clone())
        self.register_buffer("clean_scale", detector.clean_scale.detach().clone())
        self.density_fitted = detector.density.fitted
        self.ranks = detector.features.gradient_ranks
        self.threshold = float(detector.threshold)
        self.class_names = list(spec.class_names)
        self.attack_names = list(detector.attack_names)
        self.in_channels = spec.in_channels
        self.image_size = spec.image_size
        self.paired_limit = PAIRED_BATCH_LIMIT
        self.gradients_needed = GRADIENTS_NEEDED  # TorchScript reads no globals

    def _class_gradients(self, images: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and ``∇ log p_k`` for each image's likeliest classes, best first."""
        probe = images.detach().requires_grad_(True)
        logits = self.classifier(probe)
        log_probabilities = logits.log_softmax(1)
        likeliest = logits.detach().topk(self.ranks, dim=1).indices
        gradients: list[Tensor] = []
        for rank in range(self.ranks):
            target = log_probabilities.gather(1, likeliest[:, rank : rank + 1]).sum()
            found = torch.autograd.grad([target], [probe], retain_graph=rank + 1 < self.ranks)[0]
            assert found is not None
            gradients.append(found)
        return logits.detach(), gradients

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """``images``: ``N×C×H×W`` in [0, 1], at the classifier's size; call it with autograd
        on (see the module docstring)."""
        if not torch.is_grad_enabled():
            raise RuntimeError(self.gradients_needed)
        images = images.detach()
        residuals = high_pass(images, self.kernels)
        pixels = pixel_statistics(images, residuals)
        smoothed = _median3(images)
        n = images.shape[0]
        # the served guard's pairing (features.DetectorFeatures._paired_gradients): the same
        # passes, so the same rounding
        if n > self.paired_limit:
            logits, gradients = self._class_gradients(images)
            smoothed_logits, smoothed_gradients = self._class_gradients(smoothed)
        else:
            both_logits, both_gradients = self._class_gradients(torch.cat([images, smoothed]))
            logits, smoothed_logits = both_logits[:n], both_logits[n:]
            gradients = [g[:n] for g in both_gradients]
            smoothed_gradients = [g[n:] for g in both_gradients]
        with torch.no_grad():
            neighbour_logits = self.classifier(shifted_neighbour(images))
            residual = residuals[:, -2:].reshape(n, -1)
            features = torch.cat(
                [
                    pixels,
                    classifier_reaction(logits, smoothed_logits, neighbour_logits),
                    gradient_alignment(self.kernels, residual, [gradients, smoothed_gradients]),
                ],
                1,
            )
            head_logits = self.head_mlp((features - self.feature_mean) / self.feature_std)
            log_odds = head_log_odds(head_logits)
            if self.density_fitted:
                density = log_distance(
                    features,
                    self.density_columns,
                    self.density_mean,
                    self.density_scale,
                    self.density_precision,
                )
                log_odds = combine_scores(log_odds, density, self.clean_scale)
            score = log_odds.sigmoid()
            return {
                "class_probabilities": logits.softmax(1),
                "score": score,
                "is_adversarial": score > self.threshold,
                "attack_probabilities": head_logits.softmax(1)[:, 1:],
            }


def export_guard(guard: Guard, path: str | Path) -> Path:
    """Write ``guard`` as one TorchScript file (see the module docstring); return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format": EXPORT_FORMAT,
        "class_names": list(guard.spec.class_names),
        "attack_names": list(guard.detector.attack_names),
        "threshold": guard.threshold,
        "in_channels": guard.spec.in_channels,
        "image_size": guard.spec.image_size,
        "outputs": ["class_probabilities", "score", "is_adversarial", "attack_probabilities"],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # see models.io.export_torchscript
        scripted = torch.jit.script(PortableGuard(guard).eval())
        torch.jit.save(scripted, str(path), _extra_files={METADATA_FILE: json.dumps(metadata)})
    return path


__all__ = ["EXPORT_FORMAT", "GRADIENTS_NEEDED", "METADATA_FILE", "PortableGuard", "export_guard"]
