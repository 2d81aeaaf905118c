"""Runners: one module per stack, found through the registry without importing any stack."""

from bench.runners.registry import RUNNERS, RunnerSpec, load_runner, runner_spec

__all__ = ["RUNNERS", "RunnerSpec", "load_runner", "runner_spec"]
