"""The one reader of files a user hands PagedBench: suites, result and cross-check files, model configs.

Whatever such a file holds, reading it either gives text or data or raises `UnreadableFile` with one line
saying why: not a regular file (a named pipe would block for ever), too large, not UTF-8, not valid JSON
or YAML, numbers JSON does not have (NaN, Infinity), nested past any real file's depth, more values than
any real file once YAML aliases are expanded, duplicate keys.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import yaml

MAX_BYTES = 64 * 2**20  # far above any real suite
# A JSON file: the largest result the tool writes (a serving sweep at its limits, `bench.serving.limits`) is
# far below this. JSON has no aliases: its bytes bound its values, so only YAML's are counted.
MAX_JSON_BYTES = 512 * 2**20
MAX_DEPTH = 64
MAX_SIZE = 1_000_000  # a YAML file's values, aliases expanded


class UnreadableFile(Exception):
    """A file that cannot be used as what it claims to be; the message is one line for the user."""


def read_text(path: Path, max_bytes: int = MAX_BYTES) -> str:
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFile("not a regular file (a directory, pipe or device)")
        if info.st_size > max_bytes:
            raise UnreadableFile(f"{info.st_size:,} bytes, over the {max_bytes:,}-byte limit")
        with open(path, "rb") as f:
            raw = f.read(max_bytes + 1)
    except OSError as e:
        raise UnreadableFile(f"cannot read: {e.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UnreadableFile(f"not UTF-8 text (byte {e.start} is 0x{raw[e.start]:02x})") from None


def _shape(value) -> tuple[int, int]:
    """(depth, size) of nested lists and mappings, the size counting every element as a reader would walk
    them: YAML aliases share one object many times over (a few lines can stand for billions of elements).
    Each shared object is measured once."""
    memo: dict[int, tuple[int, int]] = {}

    def measure(item) -> tuple[int, int]:
        if not isinstance(item, dict | list):
            return 0, 1
        if id(item) in memo:
            return memo[id(item)]
        memo[id(item)] = (MAX_DEPTH + 1, MAX_SIZE + 1)  # a cycle is too deep
        children = list(item.values()) if isinstance(item, dict) else item
        depth, size = 1, 1
        for child in children:
            d, n = measure(child)
            depth, size = max(depth, d + 1), size + n
            if depth > MAX_DEPTH or size > MAX_SIZE:
                break
        memo[id(item)] = (depth, size)
        return depth, size

    try:
        return measure(value)
    except RecursionError:
        return MAX_DEPTH + 1, 0


def _check_shape(data, count: bool = True) -> None:
    if not count:
        if _depth(data) > MAX_DEPTH:
            raise UnreadableFile(f"nested more than {MAX_DEPTH} levels deep")
        return
    depth, size = _shape(data)
    if depth > MAX_DEPTH:
        raise UnreadableFile(f"nested more than {MAX_DEPTH} levels deep")
    if size > MAX_SIZE:
        raise UnreadableFile(f"more than {MAX_SIZE:,} values once its aliases are expanded")


def _depth(value) -> int:
    """How deep lists and mappings nest (JSON's values are a tree: no object is met twice)."""
    deepest, level = 0, [value]
    while level:
        containers = [v for v in level if isinstance(v, dict | list)]
        if not containers:
            break
        deepest += 1
        if deepest > MAX_DEPTH:
            break
        level = [c for v in containers for c in (v.values() if isinstance(v, dict) else v)]
    return deepest


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str):
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise UnreadableFile(f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as e:
        where = f", line {e.lineno} column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise UnreadableFile(f"not valid JSON ({getattr(e, 'msg', e)}{where}); truncated or corrupt") from None
    _check_shape(data, count=False)
    return data


def read_json(path: Path):
    return parse_json(read_text(path, MAX_JSON_BYTES))


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML lets the last one win)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, "a mapping key must be a plain value", key_node.start_mark
                ) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path):
    text = read_text(path)
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise UnreadableFile(f"nested more than {MAX_DEPTH} levels deep") from None
    except yaml.YAMLError as e:
        raise UnreadableFile(f"not valid YAML: {' '.join(str(e).split())}") from None
    _check_shape(data)
    return data
