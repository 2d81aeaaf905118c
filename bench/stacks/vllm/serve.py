"""vLLM's OpenAI-compatible server (`vllm serve`), for online serving runs."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.stacks.base import ServeRequest, ServerKind
from bench.stacks.vllm.options import cpu_binding, engine_args, rank_count


def command(model_dir: Path, port: int, settings: dict) -> list[str]:
    """`vllm serve` by its module (the console script looks up the package under the name `vllm`, which
    the CPU build's distribution does not have), with the scenario's engine arguments as offline."""
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir)]
    cmd += ["--served-model-name", "model", "--host", "127.0.0.1", "--port", str(port)]
    if settings.get("dtype", "auto") != "auto":
        cmd += ["--dtype", settings["dtype"]]
    if settings.get("max_model_len") is not None:
        cmd += ["--max-model-len", str(settings["max_model_len"])]
    for arg, value in engine_args(settings).items():
        flag = arg.replace("_", "-")
        cmd += [f"--{flag}" if value else f"--no-{flag}"] if isinstance(value, bool) else [f"--{flag}", str(value)]
    return cmd


def env(settings: dict) -> dict:
    """On the CPU build, the KV cache's size is an environment variable, and so is each rank's cores."""
    space = settings.get("kv_cache_space_gib")
    bind = cpu_binding(settings.get("device", ""), rank_count(settings))
    return bind | ({"VLLM_CPU_KVCACHE_SPACE": str(space)} if space else {})


def body(model: str, r: ServeRequest) -> dict:
    """ignore_eos forces the length to max_tokens (the client checks every answer's token count); greedy,
    so that no sampler's cost is in the figures; usage is asked for in the last chunk, and each chunk's
    token ids: a chunk can carry several tokens (the engine merges the ones a busy server has not sent
    yet), so chunks are not tokens. No min_tokens: it would add a logits processor to every step, and
    `vllm bench serve` (the cross-check) sends none."""
    return {
        "model": model,
        "prompt": r.prompt,
        "max_tokens": r.output_len,
        "ignore_eos": True,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
        "return_token_ids": True,
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
    chunk_tokens=lambda choice: len(choice.get("token_ids") or []),
    env=env,
    metrics_path="/metrics",
    metrics=METRICS,
    lacks=("kv_sharing_probe",),  # the sharing probe is read by offline runs only
)
