"""transformers' OpenAI-compatible server (`transformers serve`, continuous batching), for online
serving runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.stacks.base import ServeRequest, ServerKind


def command(model_dir: Path, port: int, settings: dict) -> list[str]:
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--continuous-batching"]
    cmd += ["--device", settings.get("device", "auto"), "--dtype", settings.get("dtype", "auto")]
    # Its paged cache takes a share of the free memory (0.9 by default): the scenario's memory_fraction
    # where given; on a CPU, where that share is of the host's memory, a tenth.
    share = settings.get("memory_fraction") or (0.1 if settings.get("device") == "cpu" else None)
    if share:
        cmd += ["--cb-max-memory-percent", str(share)]
    return cmd


def body(model: str, r: ServeRequest) -> dict:
    """transformers serve refuses (HTTP 422) fields outside the OpenAI schema but its own
    `generation_config`, which forces the length; its last chunk always carries usage. The model is the
    one the server was started with (`model` is ignored)."""
    config = {"max_new_tokens": r.output_len, "min_new_tokens": r.output_len, "do_sample": False}
    return {
        "prompt": r.prompt,
        "max_tokens": r.output_len,
        "temperature": 0.0,
        "stream": True,
        "generation_config": json.dumps(config),
    }


def env(settings: dict) -> dict:
    """The server's process, like an offline run, keeps torch's cuDNN attention back unless the scenario sets
    `cudnn_attention` (HfScenario): cuDNN plans every new shape, and a server meets new ones all the time."""
    return {} if settings.get("cudnn_attention") else {"TORCH_CUDNN_SDPA_DEPRIORITIZED": "1"}


# It streams decoded text pieces and does not say how many tokens each carried: its usage is checked. It
# runs the model on one device.
SERVER = ServerKind(
    name="transformers serve", command=command, body=body, env=env, lacks=("tensor_parallel_size", "device_map")
)
