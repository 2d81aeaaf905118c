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
_stopped = False


def _mark_stop(signum, frame):
    global _stopped
    _stopped = True
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def _first_stop(signum, frame):
    _mark_stop(signum, frame)
    raise _raising[-1]()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """From now on the first SIGINT or SIGTERM raises KeyboardInterrupt and any later one is ignored. Also
    where the process was started with SIGINT ignored (a background job of a script, a CI runner's child):
    a stop asked for is a stop, and a terminal sends Ctrl-C only to its foreground jobs anyway."""
    if _main_thread() and not _stopped:
        for sig in SIGNALS:
            signal.signal(sig, _first_stop)


def stopped() -> bool:
    """Whether a stop has been asked for in this process."""
    return _stopped


def check() -> None:
    """Raise the stop asked for (as the innermost `raising` block names it), if one was; else nothing."""
    if _stopped:
        raise _raising[-1]()


@contextmanager
def _handling(handler) -> Iterator[None]:
    """Within the block the first SIGINT or SIGTERM goes to `handler`; after it, the handlers are as they
    were, unless a signal came: then every later one stays ignored."""
    if not _main_thread() or _stopped:
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        if not _stopped:
            for sig, was in previous.items():
                if was is not None:
                    signal.signal(sig, was)


@contextmanager
def deferred() -> Iterator[None]:
    """Within the block the first SIGINT or SIGTERM only marks the stop: the code polls `stopped()`, ends
    its work where it can, and `check()` raises the stop outside. For an event loop, where an exception
    raised by a handler wherever the loop happens to be can be lost: raised while aiohttp parses a chunk,
    uvloop's stream callback catches it, closes that connection and only logs it (one request fails and
    the run goes on); raised elsewhere, it unwinds through uvloop's compiled loop, which leaves the
    interpreter's recursion count off."""
    with _handling(_mark_stop):
        yield


@contextmanager
def raising(exc_type: type[BaseException]) -> Iterator[None]:
    """Within the block the first SIGINT or SIGTERM raises `exc_type`; after it, the handlers are as they
    were, unless a signal came: then every later one stays ignored."""
    if not _main_thread():
        yield
        return
    _raising.append(exc_type)
    try:
        with _handling(_first_stop):
            yield
    finally:
        _raising.pop()
