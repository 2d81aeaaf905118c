"""Parse a model reference without importing any stack.

`--model` accepts a hub id (`gpt2`, `meta-llama/Llama-3.2-1B`), a local directory holding a
transformers model, or `synthetic:<preset>[@<seed>]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.errors import UserError
from bench.files import UnreadableFile, read_json
from bench.models.presets import PRESETS, Preset

_SYNTHETIC = re.compile(r"^synthetic:(?P<preset>[A-Za-z0-9_.-]+)(?:@(?P<seed>\d+))?$")
MAX_SEED = 2**32 - 1  # torch's manual_seed takes any 64-bit value; numpy's, and so the workloads', 32-bit
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


@dataclass(frozen=True)
class ModelRef:
    spec: str  # what the user wrote
    source: str  # "synthetic" | "local" | "hub"
    preset: Preset | None = None
    seed: int = 0
    path: Path | None = None  # local directory (for synthetic: filled once built)

    @property
    def max_position(self) -> int | None:
        """The model's longest sequence when it can be known without a download."""
        if self.preset is not None:
            return self.preset.max_position
        if self.path is not None:
            return max_position_from_config(self.path / "config.json")
        return None

    @property
    def offline(self) -> bool:
        return self.source != "hub"


def max_position(config: dict) -> int | None:
    """The longest sequence a transformers config allows, under the names the families use."""
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(config.get(key), int):
            return config[key]
    return None


def model_json(directory: Path, name: str, spec: str | None = None) -> dict:
    """One of a model directory's JSON files (config.json, tokenizer.json, ...), which must be an object."""
    try:
        data = read_json(directory / name)
    except UnreadableFile as e:
        raise UserError(f"model {spec or str(directory)!r}: {name}: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"model {spec or str(directory)!r}: {name} is not a JSON object")
    return data


def max_position_from_config(config_file: Path) -> int | None:
    try:
        return max_position(model_json(config_file.parent, config_file.name))
    except UserError:
        return None


def parse_model(spec: str) -> ModelRef:
    spec = spec.strip()
    if spec.startswith("synthetic:"):
        m = _SYNTHETIC.match(spec)
        if not m:
            raise UserError(f"model {spec!r}: expected synthetic:<preset>[@<seed>]")
        name = m.group("preset")
        if name not in PRESETS:
            raise UserError(f"model {spec!r}: unknown preset {name!r}; known presets: {', '.join(sorted(PRESETS))}")
        digits = m.group("seed") or "0"
        seed = int(digits) if len(digits) <= len(str(MAX_SEED)) else MAX_SEED + 1  # int() refuses 4,300 digits
        if seed > MAX_SEED:
            raise UserError(f"model {spec[:60]!r}: the seed is out of range; give a seed from 0 to {MAX_SEED}")
        return ModelRef(spec=spec, source="synthetic", preset=PRESETS[name], seed=seed)
    path = Path(spec).expanduser()
    if path.exists() or spec.startswith((".", "/", "~")):
        if not path.is_dir():
            raise UserError(f"model {spec!r}: not a directory")
        if not (path / "config.json").is_file():
            raise UserError(f"model {spec!r}: no config.json in the directory (expected a transformers model)")
        if not any(path.glob("*.safetensors")) and not any(path.glob("*.bin")):
            raise UserError(f"model {spec!r}: no weights (*.safetensors or *.bin) in the directory")
        if not any((path / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
            raise UserError(f"model {spec!r}: no tokenizer (tokenizer.json) in the directory")
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            if (path / name).exists():
                model_json(path, name, spec)
        return ModelRef(spec=spec, source="local", path=path.resolve())
    if _HUB_ID.match(spec):
        return ModelRef(spec=spec, source="hub")
    raise UserError(
        f"model {spec!r}: not a directory, not a hub id (owner/name) and not synthetic:<preset>; "
        f"presets: {', '.join(sorted(PRESETS))}"
    )
