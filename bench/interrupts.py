"""One stop per process. The first SIGINT or SIGTERM raises (KeyboardInterrupt, or the exception a run
names while it records its scenarios); every later one is ignored for the rest of the process's life.

A terminal's Ctrl-C pressed twice, or held, sends a second SIGINT tens of milliseconds after the first.
Python's own handler would raise it again wherever the process then is: in the code that records the
scenario in flight, in an exit hook (torch's, logging's, multiprocessing's: a traceback), or while the
interpreter unwinds the exit, where an uncaught KeyboardInterrupt makes Python end itself by SIGINT
(exit -2 instead of 130). Ignoring every signal after the first leaves one way out."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_raising: list[type[BaseException]] = [KeyboardInterrupt]


def _first_stop(signum, frame):
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise _raising[-1]()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """From now on the first SIGINT or SIGTERM raises KeyboardInterrupt and any later one is ignored."""
    if _main_thread():
        for sig in SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, _first_stop)


def stopped() -> bool:
    """Whether a stop signal has come (the handlers are then ignoring every later one)."""
    return all(signal.getsignal(sig) is signal.SIG_IGN for sig in SIGNALS)


@contextmanager
def raising(exc_type: type[BaseException]) -> Iterator[None]:
    """Within the block the first SIGINT or SIGTERM raises `exc_type`; after it, the handlers are as they
    were, unless a signal came: then every later one stays ignored."""
    if not _main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    _raising.append(exc_type)
    for sig in SIGNALS:
        if previous[sig] is not signal.SIG_IGN:
            signal.signal(sig, _first_stop)
    try:
        yield
    finally:
        _raising.pop()
        for sig, handler in previous.items():
            if signal.getsignal(sig) is _first_stop and handler is not None:
                signal.signal(sig, handler)
