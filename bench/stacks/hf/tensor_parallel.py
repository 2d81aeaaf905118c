"""transformers' tensor parallelism (`tp_plan="auto"`) for the HF stack, one process per device.

The harness's process is rank 0. It starts ranks 1..N-1 with the environment torchrun would give them
(RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT); every rank loads its shard of the weights
(each attention layer's heads and each MLP's columns split N ways, the activations all-reduced on every
layer). Tensor parallelism needs every rank in every step, so each call the harness makes on rank 0 —
a seed, a generate() — is first sent to the others, which make the same call with the same inputs and
keep nothing. Rank 0 measures, checks and writes the result; the others are its child processes, so the
sampler counts their memory. A rank that exits aborts the group: rank 0's call fails, the scenario with it.

    python -m bench.stacks.hf.tensor_parallel MODEL_DIR DTYPE     (a follower rank; started by `Ranks`)
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

# How long a rank waits in one collective: a follower waits for rank 0's next call (between batches,
# while rank 0 records a result) and rank 0 for the followers' load.
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)
_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_shard(path, dtype: str):
    """This rank's shard of the model, on the device of its LOCAL_RANK (the CPU where there is no GPU)."""
    import torch
    import torch.distributed as dist
    from transformers import AutoModelForCausalLM, DistributedConfig

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        local = int(os.environ["LOCAL_RANK"])
        if cuda:
            torch.cuda.set_device(local)
            # rank 0's choice of attention kernels (HfScenario.cudnn_attention), made before it started us
            torch.backends.cuda.enable_cudnn_sdp(os.environ.get("PAGEDBENCH_CUDNN_ATTENTION", "1") == "1")
        dist.init_process_group(
            "nccl" if cuda else "gloo",
            rank=int(os.environ["RANK"]),
            world_size=int(os.environ["WORLD_SIZE"]),
            timeout=COLLECTIVE_TIMEOUT,
            device_id=torch.device("cuda", local) if cuda else None,
        )
    split = DistributedConfig(tp_plan="auto", tp_size=int(os.environ["WORLD_SIZE"]))
    return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), distributed_config=split).eval()


def _exchange(command: Any = None) -> Any:
    """Rank 0 sends `command` to every rank; a follower gets it."""
    import torch.distributed as dist

    box = [command]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _to_host(value):
    return value.cpu() if hasattr(value, "cpu") and hasattr(value, "device") else value


def _abort_group() -> None:
    """Drop the process group without its peers (gone, or never to answer): its calls in flight fail."""
    with contextlib.suppress(Exception):
        from torch.distributed.distributed_c10d import _abort_process_group

        _abort_process_group()


class RankDied(RuntimeError):
    """A follower rank exited: the call in flight cannot complete (the scenario fails; the run goes on)."""


class Ranks:
    """Ranks 1..N-1 of a tensor-parallel model, seen from rank 0 (this process)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.procs: list[subprocess.Popen] = []
        self._saved = {k: os.environ.get(k) for k in _ENV}
        self._watch_stop = threading.Event()
        self.failed: str | None = None
        # A call rank 0 left part way (an error, a timeout, Ctrl-C): the followers may be inside it, waiting
        # in a collective, and would take anything sent now for its next step. They are killed, not asked.
        self.broken = False

    def start(self, path, dtype: str):
        """Start the followers and load rank 0's shard; returns rank 0's model."""
        common = {"WORLD_SIZE": str(self.size), "LOCAL_WORLD_SIZE": str(self.size)}
        common |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
        import torch

        common |= {"PAGEDBENCH_CUDNN_ATTENTION": "1" if torch.backends.cuda.cudnn_sdp_enabled() else "0"}
        for rank in range(1, self.size):
            env = os.environ | common | {"RANK": str(rank), "LOCAL_RANK": str(rank)}
            cmd = [sys.executable, "-m", "bench.stacks.hf.tensor_parallel", str(path), dtype]
            # A session of its own: a terminal's Ctrl-C goes to rank 0 alone (which stops this rank), never to
            # a follower still importing torch, which would die with a traceback and leave rank 0 waiting
            # for it at the rendezvous.
            self.procs.append(subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True))
        os.environ.update(common | {"RANK": "0", "LOCAL_RANK": "0"})
        threading.Thread(target=self._watch, name="pagedbench-tp-watch", daemon=True).start()
        self.broken = True  # until every rank has loaded
        with self._naming_the_dead():
            model = load_shard(path, dtype)
        self.broken = False
        return model

    def alive(self) -> bool:
        return self._dead() is None

    def _dead(self) -> str | None:
        dead = [(i, p) for i, p in enumerate(self.procs, 1) if p.poll() is not None]
        return ", ".join(f"rank {i} (pid {p.pid}) exited with {p.returncode}" for i, p in dead) or None

    def _watch(self, interval_s: float = 0.5) -> None:
        """A follower that exits would leave rank 0 waiting in a collective: abort the group instead."""
        while not self._watch_stop.wait(interval_s):
            self.failed = self._dead()
            if self.failed:
                _abort_group()
                return

    @contextlib.contextmanager
    def together(self, name: str, kwargs: dict):
        """Have every follower make the call rank 0 makes inside the block (tensors go by the host)."""
        if self.failed:
            raise RankDied(f"tensor parallel group is down: {self.failed}")
        self.broken = True
        with self._naming_the_dead():
            _exchange((name, {k: _to_host(v) for k, v in kwargs.items()}))
            yield
        self.broken = False

    @contextlib.contextmanager
    def _naming_the_dead(self):
        """A failure because a rank exited says so (its exit may be seen a moment after its peers' error)."""
        try:
            yield
        except Exception:
            for _ in range(20):
                self.failed = self.failed or self._dead()
                if self.failed:
                    raise RankDied(f"a tensor parallel rank exited: {self.failed}") from None
                time.sleep(0.1)
            raise

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the followers (asked between calls; killed after a call left part way, or if they do not
        exit), leave the group and restore the environment."""
        import torch.distributed as dist

        self._watch_stop.set()
        clean = self.alive() and not self.failed and not self.broken
        if clean:
            with contextlib.suppress(Exception):
                _exchange(("stop", {}))
        for p in self.procs:
            if not clean:
                p.kill()
            try:
                p.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if dist.is_initialized():
            try:
                dist.destroy_process_group()
            except Exception:  # a group whose peers are gone
                _abort_group()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _outlive_no_parent(interval_s: float = 1.0) -> None:
    """Exit when rank 0's process is gone (killed outright, it cannot stop this one)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(interval_s)
    os._exit(1)


def follow(path, dtype: str) -> int:
    """A follower rank: load the shard, then make each call rank 0 sends until it says stop. Ctrl-C is
    rank 0's to handle (it stops or kills this one), so it is ignored here."""
    import signal

    import torch
    import torch.distributed as dist

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_outlive_no_parent, name="pagedbench-tp-parent", daemon=True).start()
    model = load_shard(path, dtype)
    device = next(model.parameters()).device
    while True:
        name, kwargs = _exchange()
        if name == "stop":
            break
        if name == "seed":
            torch.manual_seed(kwargs["seed"])
        elif name == "generate":
            kwargs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
            with torch.inference_mode():
                model.generate(**kwargs)
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(follow(sys.argv[1], sys.argv[2]))
