"""Training losses: MPM-NCE (Kim et al., ECCV 2024, §3.4), the CLIP/FLYP contrastive loss, the multi-positive
sigmoid loss for SigLIP models and the zero-shot-head cross-entropy, with features gathered across processes.

MPM-NCE on a batch of B pairs with L2-normalised features ``f_i`` (images), ``g_j`` (texts) and group labels
``c_i`` (class id for classification, image id for retrieval)::

    y_ij = 1[c_i = c_j]                          P(i) = {j : y_ij = 1}   (includes i)
    ỹ_ij = (1−ε) y_ij / |P(i)| + ε (1 − y_ij) / (B − |P(i)|)
    δ_ij = 0 if y_ij = 1 else δ                  (margin on negatives only)
    L_i2t = −(1/B) Σ_i Σ_j ỹ_ij log softmax_j((f_i·g_j + δ_ij) / τ)
    L_t2i = −(1/B) Σ_j Σ_i ỹ_ji log softmax_i((f_i·g_j + δ_ij) / τ)
    L = (L_i2t + L_t2i) / 2

With several processes every rank gathers all features (with gradient) and labels and computes the loss over
the global batch. The gather's backward sums the gradients of all ranks for each rank's own slice, and DDP
then averages parameter gradients over ranks, so the step equals a single process on the global batch.
If every pair of a row is positive (B = |P(i)|) the ε mass has nowhere to go and the row's targets are
uniform over its positives.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        ctx.rank, ctx.batch = dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.batch : (ctx.rank + 1) * ctx.batch]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_batch(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    """All-gathers float tensors with gradient and integer tensors (labels) without; a no-op in one process.

    Every rank must pass the same local batch size (use ``drop_last`` in the sampler).
    """
    if not is_distributed():
        return tensors
    out = []
    for t in tensors:
        if t is None:
            out.append(None)
        elif t.is_floating_point() and t.requires_grad:
            out.append(_GatherWithGrad.apply(t))
        else:
            parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, t.contiguous())
            out.append(torch.cat(parts, dim=0))
    return tuple(out)


def mpm_nce_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    labels: torch.Tensor | None = None,
    logit_scale: float | torch.Tensor = 100.0,
    margin: float = 0.05,
    label_smoothing: float = 0.0,
    gather: bool = True,
) -> torch.Tensor:
    """Multi-positive margin NCE on L2-normalised features.

    Args:
        image_features: [B, D] L2-normalised image embeddings f_i.
        text_features: [B, D] L2-normalised text embeddings g_j.
        labels: [B] group ids c_i; None means every pair is its own group (the CLIP setting).
        logit_scale: 1/τ (CLIP's frozen 100).
        margin: δ added to negative pairs' similarities.
        label_smoothing: ε, the target mass spread over negatives.
        gather: Gather over processes when ``torch.distributed`` is initialised.
    """
    if labels is None:
        labels = torch.arange(image_features.shape[0], device=image_features.device)
    if gather:
        image_features, text_features, labels = gather_batch(image_features, text_features, labels)
    n = image_features.shape[0]
    pos = labels.view(-1, 1) == labels.view(1, -1)
    n_pos = pos.sum(dim=1, keepdim=True).to(image_features.dtype)
    n_neg = n - n_pos
    has_neg = n_neg > 0
    eps = float(label_smoothing)
    pos_mass = torch.where(has_neg, torch.full_like(n_pos, 1.0 - eps), torch.ones_like(n_pos))
    targets = torch.where(pos, pos_mass / n_pos, eps / n_neg.clamp(min=1.0))
    sims = image_features @ text_features.t()
    logits = (sims + margin * (~pos).to(sims.dtype)) * logit_scale
    loss_i2t = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    loss_t2i = -(targets.t() * F.log_softmax(logits, dim=0)).sum(dim=0).mean()
    return (loss_i2t + loss_t2i) / 2


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: float | torch.Tensor = 100.0,
    gather: bool = True,
) -> torch.Tensor:
    """The CLIP / FLYP loss: symmetric cross-entropy with one-hot diagonal targets (same-class pairs are
    negatives), no margin."""
    if gather:
        image_features, text_features = gather_batch(image_features, text_features)
    logits = logit_scale * image_features @ text_features.t()
    target = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def sigmoid_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    labels: torch.Tensor | None = None,
    logit_scale: float | torch.Tensor = 10.0,
    logit_bias: float | torch.Tensor | None = -10.0,
    gather: bool = True,
) -> torch.Tensor:
    """Multi-positive sigmoid loss (SigLIP, Zhai et al., ICCV 2023), positives = pairs of the same group.

    Every image–text pair is an independent binary problem; with group labels ``c`` (class id for classification,
    image id for retrieval, as for MPM-NCE) every pair of the same group is a positive::

        z_ij = t · f_i·g_j + b                      (t = logit_scale, already exponentiated; b = logit_bias)
        s_ij = +1 if c_i = c_j else −1
        L    = −(1/B) Σ_i Σ_j log σ(s_ij · z_ij)

    With ``labels=None`` only the diagonal is positive (SigLIP's loss). The sum over all B² pairs is divided by B,
    as SigLIP does, so the loss does not shrink with the batch. Under ``torch.distributed`` features and labels are
    all-gathered (:func:`gather_batch`) and B is the global batch; the gradient equals one process's on the
    global batch (tested), like MPM-NCE's. Pass the model's frozen scale and bias
    (``radapter.backbones.logit_scale(model)``, ``logit_bias(model)``; SigLIP: t ≈ 110, b ≈ −17 after
    pre-training, 10 and −10 at initialisation).

    Args:
        image_features: [B, D] L2-normalised image embeddings f_i.
        text_features: [B, D] L2-normalised text embeddings g_j.
        labels: [B] group ids c_i, or None for one positive per row (the diagonal).
        logit_scale: t.
        logit_bias: b (None or 0 for none).
        gather: Gather over processes when ``torch.distributed`` is initialised.
    """
    if labels is None:
        labels = torch.arange(image_features.shape[0], device=image_features.device)
    if gather:
        image_features, text_features, labels = gather_batch(image_features, text_features, labels)
    logits = logit_scale * image_features @ text_features.t()
    if logit_bias is not None:
        logits = logits + logit_bias
    sign = 2.0 * (labels.view(-1, 1) == labels.view(1, -1)).to(logits.dtype) - 1.0
    return -F.logsigmoid(sign * logits).sum() / image_features.shape[0]


def head_cross_entropy(
    image_features: torch.Tensor,
    head: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: float | torch.Tensor = 100.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Cross-entropy of ``logit_scale · f @ headᵀ`` — the classifier is a (zero-shot initialised) class-embedding
    matrix [C, D]; it needs no gathering because each sample's loss is independent."""
    logits = logit_scale * image_features @ head.t()
    return F.cross_entropy(logits, labels, label_smoothing=label_smoothing)
