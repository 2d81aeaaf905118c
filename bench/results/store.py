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
from bench.results.schema import OFFLINE_KIND, SCHEMA_VERSION, Result
from bench.results.v1 import upgrade


class ResultFileError(Exception):
    """A file that is no offline result: unreadable, not JSON, another kind of file, another schema version,
    invalid. `data`: its JSON when it was read, so that a reader of other kinds need not read it again."""

    def __init__(self, message: str, data=None) -> None:
        super().__init__(message)
        self.data = data


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
    if isinstance(data, dict) and data.get("kind", OFFLINE_KIND) != OFFLINE_KIND:
        raise ResultFileError(f"a file of kind {str(data['kind'])[:40]!r}, not an offline result", data)
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ResultFileError("not a PagedBench result (no schema_version)", data)
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
        raise ResultFileError(schema_problem(e)) from None


def schema_problem(e: ValidationError) -> str:
    """A validation error in one line: the first problem's place and message, and how many there are."""
    first = e.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"does not match the schema: {loc}: {first['msg']} ({e.error_count()} problem(s))"


def json_files(root: Path) -> Iterator[Path | tuple[Path, str]]:
    """Every *.json under `root`, in order, following directories behind symbolic links (a link back to a
    directory already walked is not walked again); a directory that cannot be listed comes as (path, why)."""
    seen: set[tuple[int, int]] = set()

    def walk(directory: Path):
        try:
            info = directory.stat()
            if (info.st_dev, info.st_ino) in seen:
                return
            seen.add((info.st_dev, info.st_ino))
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            yield directory, f"cannot read the directory: {e.strerror or e}"
            return
        for entry in entries:
            path = directory / entry.name
            try:
                is_dir = entry.is_dir()  # follows a link
            except OSError:
                is_dir = False
            if is_dir:
                yield from walk(path)
            elif entry.name.endswith(".json") and not entry.name.startswith("."):
                yield path

    yield from walk(root)


def scan_results(root: Path) -> Iterator[tuple[Path, Result | ResultFileError]]:
    """Every *.json under `root` (recursively, through links), each with its Result or the reason it is
    unusable; a directory that cannot be read comes with the reason too, never silently left out."""
    for item in json_files(root):
        if isinstance(item, tuple):
            yield item[0], ResultFileError(item[1])
            continue
        try:
            yield item, load_result(item)
        except ResultFileError as e:
            yield item, e
