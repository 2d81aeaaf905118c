"""Telemetry: GPU (NVML) and host sampling apart from the work, and the environment a run records."""
