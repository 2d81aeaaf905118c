"""vLLM's OpenAI-compatible server (`vllm serve`), for online serving runs."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.serving.server import ServeRequest, ServerKind


def command(model_dir: Path, port: int, settings: dict) -> list[str]:
    """`vllm serve` by its module (the console script looks up the package under the name `vllm`, which
    the CPU build's distribution does not have)."""
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    cmd += ["--served-model-name", "model", "--host", "127.0.0.1", "--port", str(port)]
    if settings.get("max_model_len"):
        cmd += ["--max-model-len", str(settings["max_model_len"])]
    if settings.get("dtype", "auto") != "auto":
        cmd += ["--dtype", settings["dtype"]]
    if settings.get("gpu_memory_utilization"):
        cmd += ["--gpu-memory-utilization", str(settings["gpu_memory_utilization"])]
    if settings.get("enforce_eager"):
        cmd.append("--enforce-eager")
    return cmd


def env(settings: dict) -> dict:
    """On the CPU build, the KV cache's size is an environment variable."""
    space = settings.get("kv_cache_space_gib")
    return {"VLLM_CPU_KVCACHE_SPACE": str(space)} if space else {}


def body(model: str, r: ServeRequest) -> dict:
    """min_tokens with ignore_eos forces the length; usage is asked for in the last chunk."""
    return {
        "model": model,
        "prompt": r.prompt,
        "max_tokens": r.output_len,
        "min_tokens": r.output_len,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


# Its Prometheus gauges kept on the load's timeline (older versions said gpu_cache_usage_perc).
METRICS = {
    "vllm:kv_cache_usage_perc": "kv_usage",
    "vllm:gpu_cache_usage_perc": "kv_usage",
    "vllm:num_requests_running": "running",
    "vllm:num_requests_waiting": "waiting",
    "vllm:num_preemptions_total": "preemptions",
    "vllm:prefix_cache_hits_total": "prefix_cache_hits",
}

SERVER = ServerKind(
    name="vllm serve",
    command=command,
    body=body,
    chunk_is_token=True,
    env=env,
    metrics_path="/metrics",
    metrics=METRICS,
)
