"""Shared pieces of the benchmarks: timing, memory (peak RSS and live tensor bytes), the matmul peak, the
alternating subprocess runner and the output.

Every benchmark script imports this module from its own folder (``benchmarks/`` is not a package), so each
script stays runnable as ``python benchmarks/NAME.py``. What runs is built by the library: see
``workload.py``; the FLOP count is ``flops.py``.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
MB = 2**20


# ----------------------------------------------------------------------------------------------------- timing
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], device: str = "cpu") -> float:
    sync(device)
    t = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process (VmHWM), MiB; Linux only, no psutil."""
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak_rss() -> bool:
    """Returns freed heap to the OS (glibc ``malloc_trim``) and resets this process's VmHWM to its current RSS
    (Linux ``/proc/self/clear_refs``); False where unsupported."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class TensorMemory:
    """Live tensor bytes of a stretch of code, and where in a training step they peak.

    CPU: every allocation and free of c10's CPU allocator inside the block, read from the profiler's
    allocation events (``torch.profiler.profile(profile_memory=True)``), summed in time order: ``live(t)`` is
    the bytes allocated since the block began and not yet freed. Start the block right after the imports and
    ``live`` is every tensor the run made: weights, gradients, optimizer state, EMA copies, saved activations,
    temporaries. Not counted: memory outside c10's allocator (the interpreter, Python objects, libraries'
    own buffers) — the peak RSS covers those.

    CUDA: the caching allocator's counters (``torch.cuda.memory_allocated`` / ``max_memory_allocated``) minus
    what was allocated when the block began; :meth:`steady` resets the peak, :meth:`on_phase` (pass it to
    ``Workload.on_phase``) reads them.

    :meth:`step_summary` describes the last :meth:`Workload.step` in the block (its ``radapter:*`` ranges):
    ``persistent`` = live at its start (weights, optimizer state, EMA, the batch), ``peak`` = the most live at
    any moment of it, ``activations`` = what the forward left alive for the backward (live at the start of
    the backward minus at the start of the forward: saved tensors and the loss graph's outputs).
    """

    def __init__(self, device: str = "cpu") -> None:
        self.cuda = str(device).startswith("cuda")
        self.marks: dict[str, int] = {}
        self.base = 0
        self._prof = None

    def __enter__(self) -> TensorMemory:
        if self.cuda:  # what the process already holds (an earlier model in the same process) is not counted
            import gc

            gc.collect()
            torch.cuda.empty_cache()
            self.base = torch.cuda.memory_allocated()
        else:
            from torch.profiler import ProfilerActivity, profile

            self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
            self._prof.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._prof is not None:
            self._prof.__exit__(*exc)
            if exc[0] is None:
                self._parse()
            self._prof = None  # the profiler's event buffers: hundreds of MB of RSS for a ViT step

    # --- CUDA ------------------------------------------------------------------------------------------
    def steady(self) -> None:
        """Call before the step to describe (CUDA: resets the peak counter)."""
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.marks = {"start": torch.cuda.memory_allocated()}

    def on_phase(self, name: str) -> None:
        if self.cuda and self.marks:
            self.marks[name] = torch.cuda.memory_allocated()

    # --- CPU -------------------------------------------------------------------------------------------
    def _parse(self) -> None:
        from torch._C._profiler import _EventType

        events: list[tuple[int, int, int]] = []  # (time, ptr, bytes: + allocation, - free)
        self.ranges: dict[str, list[tuple[int, int]]] = {}
        stack = list(self._prof.profiler.kineto_results.experimental_event_tree())
        while stack:
            node = stack.pop()
            if node.tag == _EventType.Allocation:
                if str(node.extra_fields.device) == "cpu":
                    events.append((node.start_time_ns, node.extra_fields.ptr, int(node.extra_fields.alloc_size)))
            elif node.name.startswith("radapter:"):
                self.ranges.setdefault(node.name, []).append((node.start_time_ns, node.end_time_ns))
            stack.extend(node.children)
        events.sort(key=lambda e: e[0])
        # frees of memory allocated before the block (e.g. garbage of an earlier model in the same process) are
        # not counted: ``live`` is what the block itself holds
        held: dict[int, int] = {}
        self.times, self.live = [], []
        total = 0
        for t, ptr, size in events:
            if size > 0:
                held[ptr] = size
            elif held.pop(ptr, None) is None:
                continue
            total += size
            self.times.append(t)
            self.live.append(total)
        for spans in self.ranges.values():
            spans.sort()

    def live_at(self, t: int) -> int:
        """Bytes live just before time ``t`` (ns, the profiler's clock)."""
        import bisect

        i = bisect.bisect_left(self.times, t)
        return self.live[i - 1] if i else 0

    def peak_between(self, t0: int, t1: int) -> int:
        import bisect

        i, j = bisect.bisect_left(self.times, t0), bisect.bisect_right(self.times, t1)
        return max([self.live_at(t0), *self.live[i:j]])

    def peak(self) -> int:
        """The most bytes live at any moment of the block."""
        return max([0, *self.live])

    def step_summary(self) -> dict[str, float]:
        """``{"persistent_mb", "peak_mb", "activations_mb"}`` of the last step in the block."""
        if self.cuda:
            m = self.marks
            return {
                "persistent_mb": (m["start"] - self.base) / MB,
                "peak_mb": (torch.cuda.max_memory_allocated() - self.base) / MB,
                "activations_mb": (m["backward"] - m["forward"]) / MB,
            }
        fwd, bwd = self.ranges["radapter:forward"][-1], self.ranges["radapter:backward"][-1]
        end = self.ranges["radapter:optimizer"][-1][1]
        return {
            "persistent_mb": self.live_at(fwd[0]) / MB,
            "peak_mb": self.peak_between(fwd[0], end) / MB,
            "activations_mb": (self.live_at(bwd[0]) - self.live_at(fwd[0])) / MB,
        }


def matmul_peak_gflops(
    m: int = 1576, k: int = 768, n: int = 3072, dtype: torch.dtype = torch.float32, device: str = "cpu", reps: int = 8
) -> float:
    """Best GFLOP/s of ``reps`` GEMMs [m,k]@[k,n] (default: ViT-B/16's MLP at batch 8) — the attainable peak
    of this machine *now*, so it is measured in the same process and conditions as the steps it normalises."""
    a = torch.randn(m, k, device=device, dtype=dtype)
    b = torch.randn(k, n, device=device, dtype=dtype)
    out = torch.empty(m, n, device=device, dtype=dtype)
    torch.mm(a, b, out=out)  # warm-up (allocation, kernel selection)
    best = float("inf")
    for _ in range(reps):
        best = min(best, timed(lambda: torch.mm(a, b, out=out), device))
    return 2.0 * m * k * n / best / 1e9


#: Spec-sheet dense (no sparsity) bf16 tensor-core peaks, GFLOP/s, matched against torch.cuda.get_device_name().
#: First match wins, so more specific names come first.
GPU_BF16_PEAK_GFLOPS = [
    ("H200", 989_000.0),
    ("H100 PCIe", 756_000.0),
    ("H100", 989_000.0),  # SXM
    ("GH200", 989_000.0),
    ("B200", 2_250_000.0),
    ("A100", 312_000.0),
    ("L40S", 362_000.0),
    ("L40", 181_000.0),
    ("L4", 121_000.0),
    ("A10G", 70_000.0),
    ("A10", 125_000.0),
    ("RTX 4090", 165_000.0),
    ("RTX 3090", 71_000.0),
]


def spec_bf16_peak_gflops(device_name: str) -> float | None:
    """The card's spec-sheet dense bf16 peak (None if the card is not in :data:`GPU_BF16_PEAK_GFLOPS`)."""
    for key, value in GPU_BF16_PEAK_GFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


# -------------------------------------------------------------------------------------------- subprocess runner
def run_worker(script: str, args: Sequence[str], timeout: float = 1800.0) -> dict[str, Any]:
    """Runs ``python SCRIPT --worker ... ARGS`` in a fresh interpreter and returns the JSON it prints last.

    A fresh process per measurement gives each method its own peak RSS and its own allocator state.
    """
    cmd = [sys.executable, os.path.join(HERE, script), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({' '.join(cmd)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"worker printed no JSON ({' '.join(cmd)}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def run_variant(script: str, worker_fn: Callable[[Any], dict], args: Any, name: str, keys: Sequence[str]) -> dict:
    """One measurement of variant ``name``: in a fresh subprocess (``python SCRIPT --worker NAME --key=value``
    for each of ``keys`` set on ``args``), or by calling ``worker_fn`` here when ``args.inprocess``."""
    if args.inprocess:
        ns = copy.copy(args)
        ns.worker = name
        return worker_fn(ns)
    argv = ["--worker", name]
    for k in keys:
        v = getattr(args, k, None)
        if v is not None and v is not False:
            argv.append(f"--{k.replace('_', '-')}" if v is True else f"--{k.replace('_', '-')}={v}")
    return run_worker(script, argv + (["--smoke"] if args.smoke else []))


def alternated(names: Sequence[str], rounds: int) -> list[tuple[int, str]]:
    """``(round, name)`` in an order that rotates every round (A B C, B C A, ...), so slow drifts of the
    machine's load hit every method alike."""
    names = list(names)
    out = []
    for r in range(rounds):
        k = r % len(names)
        out.extend((r, nm) for nm in names[k:] + names[:k])
    return out


def emit(result: dict[str, Any]) -> None:
    """A worker's result: one JSON line on stdout (the parent reads the last such line)."""
    print(json.dumps(result), flush=True)


# ----------------------------------------------------------------------------------------------------- output
def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        if isinstance(v, int):
            return f"{v:,}"
        return "-" if v is None else str(v)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda vals: "  ".join(v.rjust(w) if i else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def environment(device: str = "cpu", threads: int | None = None) -> str:
    """One line describing where a result was measured (printed with every table)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    threads = threads or torch.get_num_threads()
    dev = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or platform.machine()
    return (
        f"torch {torch.__version__}, {threads} threads, {os.cpu_count()} CPUs, {dev}, "
        f"load avg {load:.2f}, {time.strftime('%Y-%m-%d %H:%M')}"
    )


def parse_or_run_worker(p, argv, worker):
    """Parses the command line; in a ``--worker`` subprocess runs ``worker(args)``, emits its result and returns
    None, otherwise applies the ``--smoke`` overrides and returns the arguments for the parent process."""
    import argparse

    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        emit(worker(args))
        return None
    smoke_overrides(args)
    return args


def finish(out: dict[str, Any], args, text: str) -> dict[str, Any]:
    """Prints the human table and writes the JSON schema (without the private ``_details``), returning ``out``."""
    print(text)
    details = out.pop("_details", None)
    write_json(args.json, out)
    if details is not None:
        out["_details"] = details
    return out


def write_json(path: str | None, data: dict[str, Any]) -> None:
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def add_common_args(parser, steps: int, warmup: int, rounds: int, batch: int = 8) -> None:
    parser.add_argument("--json", help="write the result (the issue's schema) to this file")
    parser.add_argument("--smoke", action="store_true", help="tiny model, 2 steps: checks the script runs")
    parser.add_argument("--batch", type=int, default=batch)
    parser.add_argument("--steps", type=int, default=steps, help="timed iterations per run")
    parser.add_argument("--warmup", type=int, default=warmup, help="untimed iterations per run")
    parser.add_argument("--rounds", type=int, default=rounds, help="alternated runs of each variant")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", choices=["bf16", "fp16"], default=None, help="autocast dtype (default fp32)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument(
        "--inprocess",
        action="store_true",
        help="run every variant in this process (no per-variant RSS; --smoke implies it)",
    )
    parser.add_argument("--subprocess", action="store_true", help="with --smoke: still one subprocess per variant")


def smoke_overrides(args) -> None:
    """--smoke: tiny model, 2 timed steps, no warm-up beyond one, one round."""
    if args.smoke:
        args.steps, args.warmup, args.rounds = 2, 1, 1
        args.batch = min(args.batch, 4)
        args.inprocess = args.inprocess or not args.subprocess
        # one thread: on a shared 2-core machine two OpenMP threads on tiny ops wait for each other's core
        # (milliseconds per op), which would make a smoke run take minutes instead of seconds
        args.threads = args.threads or 1


def setup_threads(args) -> None:
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
