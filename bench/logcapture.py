"""Copy everything written to this process's stdout/stderr — child processes included, such as vLLM's
engine core — into a log file beside the results, while still showing it where it was going.

The log keeps every line; the console is spared the engines' own INFO/WARNING/DEBUG log lines (dozens per
vLLM start, some thousands of characters long; a dozen per run of transformers' paged mode), which stay in
the log. A progress bar redrawn with
carriage returns is logged as its last state, and shown that way too when the console is not a terminal."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
import sys
import termios
import threading
import time
from pathlib import Path

# vLLM's log format, after an optional "(EngineCore pid=12) " process prefix and colour codes.
_COLOUR = rb"(?:\x1b\[[0-9;]*m)*"
_PROCESS = rb"(?:\([\w.-]+ pid=\d+\))?"
_ENGINE_LOG = re.compile(rb"^" + _COLOUR + _PROCESS + _COLOUR + rb" ?(?:INFO|WARNING|DEBUG) \d\d-\d\d ")
_GRACE_S = 5.0  # the most the log waits, after the run, for its pipes to drain
# transformers' continuous-batching logger: "2026-12-01 11:56:02,216 - ContinuousBatchingLogger - INFO - ...".
_TRANSFORMERS_LOG = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ - [\w.]+ - (?:INFO|WARNING|DEBUG) - ")


# Libraries' own warnings, printed past Python's logging: torch's C++ ("[W1207 01:44:59.888315088
# utils.cpp:68] Warning: NUMA binding ..."), Triton probing for a backend, and Python's `warnings` (the
# warning, then the source line it points at, indented).
_NATIVE_WARNING = re.compile(rb"^\[[WI]\d{4} \d\d:\d\d:\d\d\.\d+ [^\]]*\] ")
_TRITON_PROBE = re.compile(rb"^Triton (?:is installed|not installed)")
_PY_WARNING = re.compile(rb"^\S+\.py:\d+: \w*Warning: ")


def console_quiet(line: bytes) -> bool:
    """Whether a line is an engine's or a library's own log or warning line, for the log file only."""
    return any(p.match(line) for p in (_ENGINE_LOG, _TRANSFORMERS_LOG, _NATIVE_WARNING, _TRITON_PROBE, _PY_WARNING))


class _Quiet:
    """`console_quiet`, line after line: the source line that follows a Python warning goes with it."""

    def __init__(self) -> None:
        self.after_warning = False

    def __call__(self, line: bytes) -> bool:
        quiet = console_quiet(line) or (self.after_warning and line.startswith(b"  "))
        self.after_warning = _PY_WARNING.match(line) is not None
        return quiet


def last_redraw(line: bytes) -> bytes:
    """A line as it last looked: what follows its last carriage return (a progress bar's final state)."""
    end = b"\n" if line.endswith(b"\n") else b""
    body = line[: len(line) - len(end)].rstrip(b"\r")
    return body.rsplit(b"\r", 1)[-1] + end


class _Lines:
    """Complete lines from a byte stream, and the partial line so far."""

    def __init__(self) -> None:
        self.partial = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        return [line + b"\n" for line in lines]


def _pending(fd: int) -> int:
    """Bytes waiting in a pipe, not yet read."""
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0


@contextlib.contextmanager
def tee_output(log_path: Path):
    sys.stdout.flush()
    sys.stderr.flush()
    log = open(log_path, "ab", buffering=0)
    lock = threading.Lock()
    saved, threads, readers = {}, [], []

    def pump(read_end: int, target: int) -> None:
        tty = os.isatty(target)
        lines, shown = _Lines(), 0  # bytes of the partial line already on a terminal
        quiet_line = _Quiet()

        def emit(data: bytes, to_log: bool, to_console: bool) -> None:
            if to_log:
                with lock:
                    try:
                        log.write(last_redraw(data))
                    except OSError:
                        pass  # a full or read-only disk must not stop the output reaching the terminal
            if to_console and data:
                try:
                    os.write(target, data if tty else last_redraw(data))
                except OSError:
                    pass

        while True:
            try:
                chunk = os.read(read_end, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                if lines.partial:
                    quiet = console_quiet(lines.partial)
                    emit(lines.partial, True, False)
                    emit(lines.partial[shown:], False, not quiet)
                return
            for line in lines.feed(chunk):
                emit(line, True, False)
                if not quiet_line(line):
                    emit(line[shown:], False, True)
                shown = 0
            # A progress bar redraws without a newline: a terminal sees it move.
            if tty and lines.partial and not console_quiet(lines.partial):
                emit(lines.partial[shown:], False, True)
                shown = len(lines.partial)

    for fd in (1, 2):
        saved[fd] = os.dup(fd)
        read_end, write_end = os.pipe()
        readers.append(read_end)
        t = threading.Thread(target=pump, args=(read_end, saved[fd]), name=f"pagedbench-log-{fd}", daemon=True)
        t.start()
        threads.append(t)
        os.dup2(write_end, fd)
        os.close(write_end)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd in (1, 2):
            os.dup2(saved[fd], fd)
        # A child that still holds a pipe (a dying engine core, multiprocessing's resource tracker, which
        # lives as long as we do) must not keep us waiting: once what was written is drained, we go on.
        deadline = time.monotonic() + _GRACE_S
        while time.monotonic() < deadline and any(t.is_alive() for t in threads):
            if not any(_pending(fd) for fd, t in zip(readers, threads) if t.is_alive()):
                time.sleep(0.05)  # the pump's last line reaches the log
                break
            time.sleep(0.02)
        for fd, t in zip(readers, threads):
            if not t.is_alive():
                os.close(fd)
        for fd in saved.values():
            os.close(fd)
        log.close()
