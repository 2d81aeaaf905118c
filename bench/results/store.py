"""Write results atomically and never over an existing file; read them back only through the schema."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import ValidationError

from bench.files import UnreadableFile, read_json
from bench.results.schema import SCHEMA_VERSION, Result
from bench.results.v1 import upgrade


class ResultFileError(Exception):
    """A result file that cannot be used: unreadable, not JSON, another schema version, invalid."""


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def result_filename(result: Result) -> str:
    return f"{result.stack}-{result.scenario}-r{result.repeat}.json"


def write_atomic(path: Path, text: str, replace: bool = False) -> Path:
    """Write `text` to `path` through a temporary file and a link, failing if `path` exists (or, with
    `replace`, renaming over it: readers see the old text or the new, never a part)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
            return path
        os.link(tmp, path)  # atomic, and refuses to replace an existing file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_result(result: Result, run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return write_atomic(run_dir / result_filename(result), result.model_dump_json(indent=1, exclude_none=True))


def load_result(path: Path) -> Result:
    try:
        data = read_json(path)
    except UnreadableFile as e:
        raise ResultFileError(str(e)) from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultFileError("not a PagedBench result (no schema_version)")
    version = data["schema_version"]
    if version == 1 and type(version) is int:
        data = upgrade(data)
    elif version != SCHEMA_VERSION:
        newer = isinstance(version, int) and version > SCHEMA_VERSION
        raise ResultFileError(
            f"schema version {version!r}; this PagedBench reads versions 1 to {SCHEMA_VERSION}"
            + (" (written by a newer PagedBench: upgrade)" if newer else "")
        )
    try:
        return Result.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ResultFileError(
            f"does not match the schema: {loc}: {first['msg']} ({e.error_count()} problem(s))"
        ) from None


def scan_results(root: Path) -> Iterator[tuple[Path, Result | ResultFileError]]:
    """Every *.json under `root` (recursively), each with its Result or the reason it is unusable."""
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith("."):
            continue
        try:
            yield path, load_result(path)
        except ResultFileError as e:
            yield path, e
