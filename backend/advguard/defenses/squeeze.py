"""Feature squeezers (Xu et al. 2018, arXiv:1704.01155): fewer bits, median smoothing.

Both keep gradients flowing: the rounding in :func:`bit_depth_reduce` passes gradients
straight through (BPDA, Athalye et al. 2018), and the median passes them to the pixel it
selects, so attacks that know about a squeezer can still follow its gradient.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def bit_depth_reduce(images: Tensor, bits: int) -> Tensor:
    """Round ``images`` in [0, 1] to ``2**bits`` levels, with a straight-through gradient."""
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be between 1 and 8, got {bits}")
    levels = 2**bits - 1
    squeezed = (images * levels).round() / levels
    return images + (squeezed - images).detach()


def median_filter(images: Tensor, size: int = 3) -> Tensor:
    """Median over each pixel's ``size×size`` neighbourhood (edges reflected), per channel."""
    if size < 2:
        raise ValueError(f"size must be at least 2, got {size}")
    n, c, h, w = images.shape
    # Even sizes (Xu et al. use 2×2) pad one pixel more on the right and bottom.
    left, right = (size - 1) // 2, size // 2
    padded = F.pad(images, (left, right, left, right), mode="reflect")
    patches = F.unfold(padded.reshape(n * c, 1, *padded.shape[-2:]), size)
    return patches.median(dim=1).values.reshape(n, c, h, w)
