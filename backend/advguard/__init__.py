"""advguard: attack, measure, defend and guard image classifiers."""

__version__ = "0.1.0"
