"""Defenses: input preprocessing (squeezers) that detectors and model wrappers share."""

from advguard.defenses.squeeze import bit_depth_reduce, median_filter

__all__ = ["bit_depth_reduce", "median_filter"]
