"""Copy everything written to this process's stdout/stderr — child processes included, such as vLLM's
engine core — into a log file beside the results, while still showing it where it was going."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from pathlib import Path


@contextlib.contextmanager
def tee_output(log_path: Path):
    sys.stdout.flush()
    sys.stderr.flush()
    log = open(log_path, "ab", buffering=0)
    lock = threading.Lock()
    saved, threads, readers = {}, [], []

    def pump(read_end: int, target: int) -> None:
        while True:
            try:
                chunk = os.read(read_end, 65536)
            except OSError:
                return
            if not chunk:
                return
            with lock:
                try:
                    log.write(chunk)
                except OSError:
                    pass  # a full or read-only disk must not stop the output reaching the terminal
            try:
                os.write(target, chunk)
            except OSError:
                pass

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
        # A child that still holds a pipe (a dying engine core) must not keep us waiting.
        for t in threads:
            t.join(timeout=5)
        for fd, t in zip(readers, threads):
            if not t.is_alive():
                os.close(fd)
        for fd in saved.values():
            os.close(fd)
        log.close()
