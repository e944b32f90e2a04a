"""Checks of the training paths a GPU exercises differently from a CPU, each on the library's own methods
(``workload.py``), random weights, nothing downloaded:

* ``amp``: R-Adapter steps under bf16 and fp16 autocast (fp16 with the trainer's gradient scaler): finite losses,
  step time and peak memory. On a CPU, fp16 must be refused with the library's error;
* ``checkpointing``: the same loss and the same gradients of every trainable tensor with and without
  ``optim.grad_checkpointing`` (R-Adapter with dropping — its masks must be redrawn identically — and LoRA),
  and a lower peak with it;
* ``frozen_bf16``: ``optim.frozen_dtype: bf16`` under bf16 autocast: the frozen matrices are bf16, the
  adapters and optimizer state fp32, the loss close to plain bf16 autocast's, less memory on the device, and
  ``restore_frozen_weights`` brings back the fp32 weights bit for bit;
* ``siglip``: open_clip's ``ViT-B-16-SigLIP`` (timm trunk; ``--cpu-smoke``: a 2-block one) built from its
  config with random weights and an offline tokenizer, R-Adapter with the sigmoid loss, bf16 autocast and
  checkpointing; then merged = unmerged (fp32, α = 0.5).

    python benchmarks/gpu_check.py --json out.json          # CUDA, ViT-B/16 batch 32, ~1 min on one GPU
    python benchmarks/gpu_check.py --cpu-smoke              # tiny models on the CPU, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import common as C  # noqa: E402
import torch  # noqa: E402
import workload as W  # noqa: E402
from inference import randomize_adapters  # noqa: E402

SIGLIP = "ViT-B-16-SigLIP"
TINY_VIT = {"embed_dim": 64, "depth": 2, "num_heads": 2, "img_size": 64}


def tiny_siglip_spec() -> str:
    """A model-config JSON shaped like ``ViT-B-16-SigLIP`` (timm SigLIP trunk with a MAP head, bidirectional text
    tower pooled at the last token, logit bias) but 2 blocks wide 64, with open_clip's own tokenizer (the file
    name must not contain "siglip": open_clip would pick a SigLIP tokenizer, a download)."""
    import open_clip
    from timm.models import is_model, model_entrypoint, register_model

    tiny = "radapter_bench__vit_siglip_tiny"
    if not is_model(tiny):
        original = model_entrypoint("vit_base_patch16_siglip_224")

        def entry(pretrained: bool = False, **kw):
            return original(pretrained=False, **{**TINY_VIT, **kw})

        entry.__name__ = tiny
        register_model(entry)
    cfg = json.loads(json.dumps(open_clip.get_model_config(SIGLIP)))
    cfg["embed_dim"] = 64
    cfg["vision_cfg"].update(image_size=64, timm_model_name=tiny)
    text = cfg["text_cfg"]
    for key in ("hf_tokenizer_name", "tokenizer_kwargs"):
        text.pop(key, None)
    text.update(context_length=16, vocab_size=49408, width=32, heads=2, layers=2)
    path = os.path.join(tempfile.gettempdir(), "radapter-bench-tiny-sig.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cfg, f)
    return path


class Checks:
    """Runs each check, records ``{"ok", "seconds", "detail", ...}`` and never stops at a failure."""

    def __init__(self, args) -> None:
        self.args, self.results = args, {}
        self.cuda = args.device.startswith("cuda")

    def config(self, method: str, **kw):
        a = self.args
        return W.run_config(method, model=a.model, smoke=a.cpu_smoke, batch=a.batch, device=a.device, **kw)

    def run(self, name: str, fn) -> None:
        t = time.perf_counter()
        try:
            res = fn()
            res.setdefault("ok", True)
        except Exception as e:  # noqa: BLE001 - a failing check is a result, the others still run
            res = {"ok": False, "detail": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()[-2000:]}
        res["seconds"] = time.perf_counter() - t
        self.results[name] = res
        status = "ok" if res["ok"] else "FAILED"
        print(f"  {name:14s} {status:6s} {res['seconds']:6.1f} s  {res.get('detail', '')}", flush=True)
        if self.cuda:
            torch.cuda.empty_cache()

    def steps(self, cfg, n: int) -> dict:
        """``n`` steps; the losses, the last step's time and the tensor-memory summary of the last step."""
        with C.TensorMemory(self.args.device) as mem:
            wl = W.build(cfg)
            batch = wl.task.batch(0)
            losses = [wl.step(batch) for _ in range(n - 1)]
            mem.steady()
            wl.on_phase = mem.on_phase
            dt = C.timed(lambda: losses.append(wl.step(batch)), self.args.device)
        return {"losses": losses, "step_s": dt, **mem.step_summary(), "workload": wl}

    # --- the checks ------------------------------------------------------------------------------------
    def amp(self) -> dict:
        from radapter.errors import ConfigError

        out, notes = {}, []
        for precision in ("bf16", "fp16"):
            try:
                r = self.steps(self.config("radapter", amp=precision), 3)
            except ConfigError as e:
                if self.cuda or "fp16" not in str(e):
                    raise
                out[precision] = {"refused": str(e)}
                notes.append(f"fp16 refused on CPU ({e})")
                continue
            finite = all(torch.isfinite(torch.tensor(r["losses"])))
            scaler = r["workload"].scaler
            if precision == "fp16" and (scaler is None or not scaler.get_scale() > 0):
                raise AssertionError("fp16 without the trainer's gradient scaler")
            if not finite:
                raise AssertionError(f"{precision}: losses {r['losses']}")
            out[precision] = {"step_s": r["step_s"], "peak_mb": r["peak_mb"], "losses": r["losses"]}
            notes.append(f"{precision} {r['step_s'] * 1e3:.0f} ms/step, peak {r['peak_mb']:.0f} MB")
        return {**out, "detail": "; ".join(notes)}

    def _grads(self, method: str, ckpt: bool, seed: int = 3):
        """Loss and gradients of one batch, with adapters made non-trivial (R-Adapter and LoRA start as the
        identity, where dropping masks and LoRA's A would not matter)."""
        torch.manual_seed(0)
        wl = W.build(self.config(method, grad_checkpointing=ckpt))
        with torch.no_grad():
            if method == "radapter":
                randomize_adapters(wl.model)
            for name, p in wl.model.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))))
        batch = wl.task.batch(0)
        torch.manual_seed(seed)  # the dropping masks
        loss = wl.method.loss(batch)
        names = [n for n, p in wl.model.named_parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, [p for p in wl.model.parameters() if p.requires_grad])
        return loss.detach(), dict(zip(names, grads))

    def checkpointing(self) -> dict:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        notes, out = [], {}
        for method in ("radapter", "lora"):
            loss0, g0 = self._grads(method, False)
            loss1, g1 = self._grads(method, True)
            other, _ = self._grads(method, False, seed=4)
            worst = max(((a - g1[n]).norm() / a.norm().clamp_min(1e-30)).item() for n, a in g0.items())
            if method == "radapter" and torch.equal(loss0, other):
                raise AssertionError("the dropping masks do not change the loss: the comparison proves nothing")
            if not torch.allclose(loss0, loss1, rtol=1e-5, atol=1e-6) or worst > 1e-4:
                raise AssertionError(f"{method}: loss {loss0.item()} vs {loss1.item()}, worst grad rel err {worst:.2e}")
            out[method] = {"loss_diff": abs(loss0 - loss1).item(), "worst_grad_rel_err": worst}
            notes.append(f"{method}: worst grad rel err {worst:.1e}")
        plain = self.steps(self.config("radapter"), 2)
        ckpt = self.steps(self.config("radapter", grad_checkpointing=True), 2)
        if not ckpt["activations_mb"] < plain["activations_mb"]:
            raise AssertionError(f"activations with checkpointing {ckpt['activations_mb']:.1f} MB ≥ without")
        out["peak_mb"] = {"plain": plain["peak_mb"], "ckpt": ckpt["peak_mb"]}
        notes.append(f"R-Adapter peak {plain['peak_mb']:.0f} → {ckpt['peak_mb']:.0f} MB")
        return {**out, "detail": "; ".join(notes)}

    def frozen_bf16(self) -> dict:
        from radapter.backbones import frozen_weights_held, restore_frozen_weights

        base = self.steps(self.config("radapter", amp="bf16", grad_checkpointing=True), 2)
        held = self.steps(self.config("radapter", amp="bf16", grad_checkpointing=True, frozen_dtype="bf16"), 2)
        wl = held["workload"]
        if frozen_weights_held(wl.model) != torch.bfloat16:
            raise AssertionError("optim.frozen_dtype bf16 did not hold the frozen weights")
        frozen = [p for p in wl.model.parameters() if not p.requires_grad and p.ndim >= 2]
        trained = [p for p in wl.model.parameters() if p.requires_grad]
        state = [v for s in wl.optimizer.state.values() for v in s.values() if torch.is_tensor(v) and v.ndim]
        if not all(p.dtype == torch.bfloat16 for p in frozen) or any(t.dtype != torch.float32 for t in trained + state):
            raise AssertionError("frozen matrices must be bf16, adapters and optimizer state fp32")
        rel = abs(held["losses"][0] - base["losses"][0]) / abs(base["losses"][0])
        if rel > 0.05:
            raise AssertionError(f"first-step loss {held['losses'][0]} vs plain bf16 autocast {base['losses'][0]}")
        fresh = W.load_backbone(self.config("radapter"))  # the same seeded base model, fp32
        restore_frozen_weights(wl.model)
        ref = dict(fresh.model.named_parameters())
        mismatched = [
            n for n, p in wl.model.named_parameters() if not p.requires_grad and n in ref and not torch.equal(p, ref[n])
        ]
        if mismatched:
            raise AssertionError(f"restore_frozen_weights changed {len(mismatched)} weights, e.g. {mismatched[0]}")
        # on the device, the held weights save half their fp32 bytes (the fp32 copy lives in host memory)
        saved = base["persistent_mb"] - held["persistent_mb"]
        if self.cuda and not saved > 0:
            raise AssertionError(
                f"no device memory saved ({base['persistent_mb']:.0f} → {held['persistent_mb']:.0f} MB)"
            )
        return {
            "loss_rel_diff": rel,
            "persistent_mb": {"bf16": base["persistent_mb"], "bf16_frozen": held["persistent_mb"]},
            "peak_mb": {"bf16": base["peak_mb"], "bf16_frozen": held["peak_mb"]},
            "detail": f"loss rel diff {rel:.1e}; persistent {base['persistent_mb']:.0f} → "
            f"{held['persistent_mb']:.0f} MB, peak {base['peak_mb']:.0f} → {held['peak_mb']:.0f} MB"
            + ("" if self.cuda else " (CPU: includes the fp32 host copy)"),
        }

    def siglip(self) -> dict:
        spec = tiny_siglip_spec() if self.args.cpu_smoke else SIGLIP
        extra = {
            "method.radapter.loss": "sigmoid",
            "method.radapter.margin": 0.0,
            "method.radapter.label_smoothing": 0.0,
        }
        cfg = W.run_config(
            "radapter",
            model=spec,
            batch=self.args.batch,
            device=self.args.device,
            amp="bf16",
            grad_checkpointing=True,
            extra={**extra, "eval.alpha": 0.5},
        )
        r = self.steps(cfg, 3)
        if not all(torch.isfinite(torch.tensor(r["losses"]))):
            raise AssertionError(f"losses {r['losses']}")
        wl = r["workload"]
        randomize_adapters(wl.model)
        merged = wl.method.merged(0.5).eval()
        model = wl.model.eval()
        images = wl.task.images(4, seed=1)
        tokens = wl.backbone.tokenizer(wl.task.captions(4)).to(wl.device)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        from radapter.backbones import encode_image, encode_text

        with torch.no_grad():
            err = max(
                (encode_image(merged, images) - encode_image(model, images)).abs().max().item(),
                (encode_text(merged, tokens) - encode_text(model, tokens)).abs().max().item(),
            )
        if err > 1e-4:
            raise AssertionError(f"merged ≠ unmerged: max abs diff {err:.2e}")
        return {
            "model": os.path.basename(spec),
            "losses": r["losses"],
            "step_s": r["step_s"],
            "peak_mb": r["peak_mb"],
            "merge_max_abs_diff": err,
            "detail": f"{os.path.basename(spec)}: {r['step_s'] * 1e3:.0f} ms/step, peak {r['peak_mb']:.0f} MB, "
            f"merged − unmerged {err:.1e}",
        }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny models on the CPU (the test suite runs this)")
    p.add_argument("--device", default=None, help="default: cuda (cpu with --cpu-smoke)")
    p.add_argument("--model", default="ViT-B-16")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--checks", nargs="+", default=["amp", "checkpointing", "frozen_bf16", "siglip"])
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    if args.cpu_smoke:
        args.device, args.batch = args.device or "cpu", min(args.batch, 4)
        torch.set_num_threads(1)
    args.device = args.device or "cuda"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"gpu_check.py: torch {torch.__version__} sees no CUDA device (use --cpu-smoke on a CPU)")
    checks = Checks(args)
    print(f"gpu_check: {C.environment(args.device)}", flush=True)
    for name in args.checks:
        checks.run(name, getattr(checks, name))
    out = {"device": args.device, "checks": checks.results}
    C.write_json(args.json, {"device": args.device, "checks": {k: _plain(v) for k, v in checks.results.items()}})
    return out


def _plain(value):
    """JSON-able copy (drops workloads and tensors)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "workload"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


if __name__ == "__main__":
    results = main()
    sys.exit(0 if all(r["ok"] for r in results["checks"].values()) else 1)
