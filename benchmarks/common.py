"""Shared pieces of the benchmarks: models, batches, timing, memory, the alternating subprocess runner,
the matmul peak and the analytic FLOP count.

Every benchmark script imports this module from its own folder (``benchmarks/`` is not a package), so each
script stays runnable as ``python benchmarks/NAME.py``.

FLOP counting (see :func:`train_step_flops`): only matrix products are counted, 2 FLOPs per multiply-add,
from the model config (no tracing), per training step:

* per transformer block and token: q/k/v projection ``3d²``, attention scores ``N·d`` and weighted sum
  ``N·d``, output projection ``d²``, MLP ``2·d·m`` (m = mlp width) multiply-adds; the vision stem (patch
  convolution) ``196·768·768`` per image; the final projections ``d·E`` on one token; the loss ``B²·E``;
* R-Adapter's adapters count on the 1 − p = 80 % of token rows that dropping keeps (the library applies F
  to kept rows only);
* backward: every product needs the gradient of its input (same cost as forward) where anything below it is
  trainable, and the gradient of its weight (same cost again) where the weight (or, for peft's
  ``MultiheadAttention``, the merged weight it builds from LoRA) is trainable;
* ignored: LayerNorm, softmax, GELU, residual adds, the optimizer and the EMA (memory-bound, a few % of time).

ViT-B/16 forward, one image: 17.6 GMAC = 35.1 GFLOP; one 77-token text: 2.9 GMAC = 5.9 GFLOP.
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
from dataclasses import dataclass
from typing import Any

import torch

HERE = os.path.dirname(os.path.abspath(__file__))

#: The --smoke model: a 2-block, 32-px open_clip CLIP (same shape as tests/conftest.py), built from a dict.
TINY_CFG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 48, "patch_size": 8, "head_width": 24},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}
METHODS = ("full_ft", "radapter", "radapter_r64", "lora")
LORA_TARGETS = ["attn", "c_fc", "c_proj"]  # peft wraps nn.MultiheadAttention (in_proj + out_proj) as one target
LORA_RANK = 8
DROP_PROB = 0.2  # R-Adapter's adapter dropping in every recipe (RAdapterConfig default), token granularity


# ----------------------------------------------------------------------------------------------------- models
def model_config(smoke: bool) -> dict[str, Any]:
    if smoke:
        return json.loads(json.dumps(TINY_CFG))
    import open_clip

    return open_clip.get_model_config("ViT-B-16")


def build_model(smoke: bool, device: str = "cpu", seed: int = 0) -> torch.nn.Module:
    """open_clip ViT-B/16 (random init: the cost is that of the real weights) or the tiny smoke model."""
    from open_clip.model import CLIP

    torch.manual_seed(seed)
    cfg = model_config(smoke)
    model = CLIP(**cfg).to(device)
    model.radapter_base_info = {"library": "open_clip", "name": "ViT-B-16" if not smoke else "tiny", "model_cfg": cfg}
    return model


def apply_method(model: torch.nn.Module, method: str) -> torch.nn.Module:
    """Prepares ``model`` for one of :data:`METHODS` (in place) and returns it."""
    import radapter

    if method == "full_ft":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    if method == "radapter":
        return radapter.apply_r_adapter(model, radapter.RAdapterConfig())
    if method.startswith("radapter_r"):
        return radapter.apply_r_adapter(model, radapter.RAdapterConfig(rank=int(method[len("radapter_r") :])))
    if method == "lora":
        return apply_lora(model)
    raise ValueError(f"unknown method {method!r}; one of {METHODS}")


def apply_lora(model: torch.nn.Module, rank: int = LORA_RANK) -> torch.nn.Module:
    """peft LoRA on every attention (``nn.MultiheadAttention``: peft adapts in_proj and out_proj by merging
    before each call) and both MLP linears of both towers. Never ``out_proj`` alone: MHA does not call it."""
    from peft import LoraConfig, inject_adapter_in_model

    cfg = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(LORA_TARGETS))
    model = inject_adapter_in_model(cfg, model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)
    return model


def tokenizer(cfg: dict[str, Any]):
    """open_clip's BPE tokenizer at the model's context length (the vocabulary ships with open_clip)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer(context_length=cfg["text_cfg"]["context_length"])


def import_libraries(method: str) -> None:
    """Imports everything a method's step uses, so "RSS after imports" is the same baseline for all methods
    (torch alone is ~600 MB of RSS; open_clip + radapter ~250 MB more; peft for LoRA)."""
    import open_clip  # noqa: F401

    import radapter  # noqa: F401

    if method == "lora":
        import peft  # noqa: F401


def trainable_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_batch(cfg: dict[str, Any], batch: int, device: str = "cpu", seed: int = 0):
    """Random images (normalised-scale noise), random tokens ending in EOT, and class labels."""
    g = torch.Generator().manual_seed(seed)
    size = cfg["vision_cfg"]["image_size"]
    ctx = cfg["text_cfg"]["context_length"]
    images = torch.randn(batch, 3, size, size, generator=g)
    tokens = torch.randint(1, 49000, (batch, ctx), generator=g)
    tokens[:, -1] = 49407  # open_clip pools at the argmax token (EOT)
    labels = torch.arange(batch) % max(1, batch // 2)  # pairs of same-class samples, as MPM-NCE sees them
    return images.to(device), tokens.to(device), labels.to(device)


class TrainStep:
    """One optimisation step of a method: both towers forward, the method's loss, backward, AdamW, EMA.

    FLYP and LoRA use the CLIP contrastive loss; R-Adapter MPM-NCE (ε = 0.02, δ = 0.05) plus its EMA update.
    ``amp``: None, "bf16" or "fp16" autocast on the model's device.
    """

    def __init__(self, model: torch.nn.Module, method: str, device: str = "cpu", amp: str | None = None):
        import radapter

        self.model, self.method, self.device = model.train(), method, device
        self.params = [p for p in model.parameters() if p.requires_grad]
        # foreach=True on CPU too: the same fused-by-list kernels on every method (the default on CUDA).
        self.opt = torch.optim.AdamW(self.params, lr=1e-5, weight_decay=0.0, foreach=True)
        self.amp_dtype = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.is_radapter = method.startswith("radapter")
        self._r = radapter

    def __call__(self, images: torch.Tensor, tokens: torch.Tensor, labels: torch.Tensor) -> float:
        r = self._r
        with torch.autocast(self.device.split(":")[0], dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            f = r.encode_image(self.model, images, normalize=True)
            g = r.encode_text(self.model, tokens, normalize=True)
            if self.is_radapter:
                loss = r.mpm_nce_loss(f.float(), g.float(), labels, margin=0.05, label_smoothing=0.02)
            else:
                loss = r.clip_loss(f.float(), g.float())
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.is_radapter:
            r.ema_update(self.model)
        return float(loss.detach())


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


class SavedActivations:
    """Context manager: bytes of the distinct tensors autograd saves for backward (parameters and buffers
    excluded) — the activation memory of one step, measured, not estimated."""

    def __init__(self, model: torch.nn.Module):
        self.skip = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
        self.seen: dict[int, int] = {}
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in self.skip:
            self.seen.setdefault(st.data_ptr(), st.nbytes())
        return t

    @property
    def mb(self) -> float:
        return sum(self.seen.values()) / 2**20

    def __enter__(self):
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


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


# ---------------------------------------------------------------------------------------------------- FLOPs
@dataclass
class Tower:
    d: int  # width
    mlp: int  # MLP hidden width
    layers: int
    tokens: int
    stem_macs: int  # patch convolution MACs per sample (0 for text)


def towers(cfg: dict[str, Any]) -> dict[str, Tower]:
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    p, size = v["patch_size"], v["image_size"]
    patches = (size // p) ** 2
    return {
        "image": Tower(
            v["width"],
            int(v["width"] * v.get("mlp_ratio", 4.0)),
            v["layers"],
            patches + 1,
            patches * 3 * p * p * v["width"],
        ),
        "text": Tower(t["width"], int(t["width"] * t.get("mlp_ratio", 4.0)), t["layers"], t["context_length"], 0),
    }


def forward_flops(cfg: dict[str, Any], batch: int, tower: str | None = None) -> float:
    """Matmul FLOPs of one forward pass of ``batch`` samples through one tower (or both)."""
    total = 0.0
    for name, tw in towers(cfg).items():
        if tower is not None and name != tower:
            continue
        n, d = tw.tokens, tw.d
        block = n * (4 * d * d + 2 * d * tw.mlp) + 2 * n * n * d
        total += batch * (tw.layers * block + tw.stem_macs + d * cfg["embed_dim"])
    return 2.0 * total


def train_step_flops(cfg: dict[str, Any], batch: int, method: str) -> float:
    """Matmul FLOPs of one training step (forward + backward, both towers, loss) — see the module docstring."""
    rank = None
    if method.startswith("radapter_r"):
        rank = int(method[len("radapter_r") :])
    macs = 3.0 * batch * batch * cfg["embed_dim"]  # loss: similarity matrix forward + two gradients
    for tw in towers(cfg).values():
        n, d, m, L = tw.tokens, tw.d, tw.mlp, tw.layers
        qkv, attn, out, mlp = 3 * d * d * n, 2 * n * n * d, d * d * n, 2 * d * m * n
        proj = d * cfg["embed_dim"]
        if method == "full_ft":
            per_block = 3 * (qkv + attn + out + mlp)
            macs += batch * (L * per_block + 2 * tw.stem_macs + 3 * proj)
        elif method.startswith("radapter"):
            # adapter per site and token: full rank d², low rank 2rd; forward + input grad + weight grad, on the
            # 1 − p kept token rows only (radapter applies F to kept rows; dropped rows are h unchanged)
            site = (d * d * n if rank is None or rank >= d else 2 * rank * d * n) * (1.0 - DROP_PROB)
            # forward + input gradient everywhere (attention: both operands are activations, so 2 gradients)...
            base = L * (2 * (qkv + out + mlp) + 3 * attn)
            base -= qkv + 2 * attn + out  # ... except block 0's attention below its adapter (forward only)
            adapters = 2 * L * 3 * site - site  # the first adapter needs no input gradient
            macs += batch * (base + adapters + tw.stem_macs + 2 * proj)
        elif method == "lora":
            r = LORA_RANK
            lora_mlp = r * (d + m) * n * 2  # c_fc and c_proj LoRA paths (each r·(in+out) per token)
            # peft's MHA LoRA merges W' = W + BA before each call, so autograd computes the full weight gradient
            # of in_proj and out_proj (then A and B from it); block 0 needs no input gradient below in_proj.
            per_block = 2 * (qkv + out + mlp) + 3 * attn + (qkv + out) + 3 * lora_mlp
            merge = 4 * d * d * r * (1 + 1 + 2)  # BA merge, unmerge, and the two gradients of the merge
            macs += batch * (L * per_block - qkv + tw.stem_macs + 2 * proj) + L * merge
        else:
            raise ValueError(method)
    return 2.0 * macs


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
