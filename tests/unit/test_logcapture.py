"""What reaches the console and the log: the engines' own log lines only in the log, progress bars as
their final state when nobody watches a terminal."""

import os
import subprocess
import sys
import textwrap

from bench.logcapture import console_quiet, last_redraw


def test_engine_log_lines_are_for_the_log_only():
    assert console_quiet(b"INFO 12-01 07:43:14 [api_utils.py:286] non-default args: {}\n")
    assert console_quiet(b"(EngineCore pid=39) WARNING 12-01 07:50:26 [x.py:1] slow\n")
    assert console_quiet(b"\x1b[1;36m(EngineCore pid=39)\x1b[0;0m INFO 12-01 07:50:26 [x.py:1] y\n")
    assert not console_quiet(b"ERROR 12-01 07:50:26 [x.py:1] the engine died\n")
    paged = b"2026-12-01 11:56:02,216 - ContinuousBatchingLogger - INFO - Warming up for continuous batching...\n"
    assert console_quiet(paged)
    assert not console_quiet(paged.replace(b"INFO", b"ERROR"))
    assert not console_quiet(b"[1/1] vllm: ok, 16 tokens in 0.01 s\n")


def test_library_warnings_are_for_the_log_only():
    """What a CPU run of vLLM printed past its logger: torch's C++ warnings, Triton's backend probe,
    Python's warnings with the source line they point at."""
    numa = b"[W1207 01:44:59.888315088 utils.cpp:68] Warning: NUMA binding: Using MEMBIND policy (function x)\n"
    assert console_quiet(numa)
    assert console_quiet(b"Triton is installed, but doesn't include CPU backend. Disabling Triton.\n")
    assert console_quiet(b"Triton not installed or not compatible; certain GPU-related functions will not be ...\n")
    assert console_quiet(b"/x/vllm/dispatcher.py:138: FutureWarning: `reduce_op` is deprecated\n")
    assert not console_quiet(b"[E1207 01:44:59.888315088 utils.cpp:68] an error\n")  # errors stay
    assert not console_quiet(b"Loading safetensors checkpoint shards: 100% Completed | 1/1\n")  # progress stays


def test_a_redrawn_progress_bar_is_its_last_state():
    assert last_redraw(b"shards: 0%\rshards: 50%\rshards: 100%\n") == b"shards: 100%\n"
    assert last_redraw(b"done\r\n") == b"done\n" and last_redraw(b"plain\n") == b"plain\n"


def test_tee_keeps_everything_in_the_log_and_spares_the_console(tmp_path):
    log = tmp_path / "x.log"
    script = textwrap.dedent(f"""
        import os, sys
        from pathlib import Path
        from bench.logcapture import tee_output
        with tee_output(Path({str(log)!r})):
            print("[1/1] a: ok", flush=True)
            os.system("echo 'INFO 12-01 07:43:14 [a.py:1] engine chatter'")  # a child process, as vLLM's core
            sys.stderr.write("/x/d.py:1: FutureWarning: old\\n  if hasattr(value, 'x'):\\n")
            sys.stderr.write("  indented, not a warning's\\n")
            sys.stderr.write("bar: 10%\\rbar: 60%\\rbar: 100%\\n")
            sys.stderr.flush()
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "[1/1] a: ok\n" and out.stderr == "  indented, not a warning's\nbar: 100%\n"
    text = log.read_text()
    assert "FutureWarning: old\n  if hasattr" in text
    assert "engine chatter" in text and "[1/1] a: ok" in text and "bar: 100%\n" in text and "\r" not in text
