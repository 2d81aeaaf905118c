"""Model references: hub ids, local directories and synthetic presets."""

from bench.models.reference import ModelRef, parse_model

__all__ = ["ModelRef", "parse_model"]
