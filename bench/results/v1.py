"""Reading version-1 result files: the same figures, sections that were free-form mappings.

Version 1 kept every stack's knobs flat in `config` and its KV accounting as a mapping tagged with the
stack's name; version 2 puts the knobs under `config.options` and tags the KV section with its layout.
"""

from __future__ import annotations

from typing import Any

from bench.results.sections import RunConfig

_COMMON = set(RunConfig.model_fields) - {"options"}
# Keys only a block pool's accounting has; a version-1 section without them described padded batches.
_POOL_KEYS = {"pool_blocks", "pool_tokens", "pool_bytes", "block_size", "block_fill", "peak_usage"}


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A version-1 result as version 2. Shapes it does not expect are left for the schema to refuse."""
    out = dict(data, schema_version=2)
    config = data.get("config")
    if isinstance(config, dict):
        out["config"] = {k: v for k, v in config.items() if k in _COMMON}
        out["config"]["options"] = {k: v for k, v in config.items() if k not in _COMMON and v is not None}
    timing = data.get("timing")
    if isinstance(timing, dict) and "engine_reused" in timing:
        out["timing"] = timing | {"engine_reused": bool(timing["engine_reused"])}
    kv = data.get("kv")
    if isinstance(kv, dict):
        out["kv"] = _kv(kv, config if isinstance(config, dict) else {})
    return out


def _kv(kv: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    section = {k: v for k, v in kv.items() if k not in ("stack", "mode")}
    if _POOL_KEYS & set(kv):
        return section | {"layout": "block-pool"}
    capacity = kv.get("capacity") if isinstance(kv.get("capacity"), dict) else {}
    batch = config.get("batch_size")
    if not isinstance(batch, int) or isinstance(batch, bool):
        batch = capacity.get("max_batch") or 1  # no size given: batches of one
    return section | {"layout": "padded-batches", "batch_size": batch}
