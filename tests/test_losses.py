"""MPM-NCE against a naive loop, its relation to the CLIP loss, and the distributed gather."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F

import radapter


def naive_mpm_nce(f, g, c, tau, delta, eps):
    """Direct transcription of §4, one term at a time."""
    b = len(c)
    sims = [[float(f[i] @ g[j]) + (0.0 if c[i] == c[j] else delta) for j in range(b)] for i in range(b)]

    def target(i, j):
        npos = sum(1 for k in range(b) if c[k] == c[i])
        return (1 - eps) / npos if c[i] == c[j] else eps / (b - npos)

    li2t = 0.0
    for i in range(b):
        lse = math.log(sum(math.exp(sims[i][k] / tau) for k in range(b)))
        li2t -= sum(target(i, j) * (sims[i][j] / tau - lse) for j in range(b))
    lt2i = 0.0
    for j in range(b):
        lse = math.log(sum(math.exp(sims[k][j] / tau) for k in range(b)))
        lt2i -= sum(target(j, i) * (sims[i][j] / tau - lse) for i in range(b))
    return (li2t / b + lt2i / b) / 2


def _feats(b=6, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=-1),
        F.normalize(torch.randn(b, d, generator=g, dtype=torch.float64), dim=-1),
    )


@pytest.mark.parametrize("labels", [[0, 0, 1, 2, 2, 2], [0, 1, 2, 3, 4, 5], [3, 3, 1, 1, 0, 3]])
@pytest.mark.parametrize("delta,eps", [(0.05, 0.02), (0.1, 0.0), (0.0, 0.3)])
def test_mpm_nce_matches_naive_loop(labels, delta, eps):
    f, g = _feats()
    got = radapter.mpm_nce_loss(f, g, torch.tensor(labels), logit_scale=100.0, margin=delta, label_smoothing=eps)
    assert got.item() == pytest.approx(naive_mpm_nce(f, g, labels, 0.01, delta, eps), rel=1e-9)


def test_mpm_nce_equals_clip_loss_for_unique_labels():
    f, g = _feats()
    mpm = radapter.mpm_nce_loss(f, g, torch.arange(6), margin=0.0, label_smoothing=0.0)
    assert mpm.item() == pytest.approx(radapter.clip_loss(f, g).item(), rel=1e-12)
    # labels=None means unique labels
    assert radapter.mpm_nce_loss(f, g, None, margin=0.0).item() == pytest.approx(mpm.item(), rel=1e-12)
    # with shared labels the losses differ (same-class pairs are positives, not negatives)
    assert radapter.mpm_nce_loss(f, g, torch.tensor([0, 0, 1, 1, 2, 2]), margin=0.0).item() != pytest.approx(mpm.item())


def test_mpm_nce_all_positive_batch_is_finite():
    f, g = _feats()
    loss = radapter.mpm_nce_loss(f, g, torch.zeros(6, dtype=torch.long), label_smoothing=0.1)
    assert torch.isfinite(loss)


def test_head_cross_entropy():
    f, _ = _feats()
    head = F.normalize(torch.randn(3, 5, dtype=torch.float64), dim=-1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    expected = F.cross_entropy(100.0 * f @ head.t(), labels)
    assert radapter.head_cross_entropy(f, head, labels).item() == pytest.approx(expected.item())


def _dist_worker(rank, world, port, result_dir):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3, dtype=torch.float64)
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randn(8, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 2, 0, 3, 3, 3])
    sl = slice(rank * 4, (rank + 1) * 4)
    f = F.normalize(lin(x[sl]), dim=-1)
    g = F.normalize(lin(y[sl]), dim=-1)
    radapter.mpm_nce_loss(f, g, labels[sl], label_smoothing=0.1).backward()
    for p in lin.parameters():  # what DDP does
        dist.all_reduce(p.grad)
        p.grad /= world
    torch.save({n: p.grad for n, p in lin.named_parameters()}, os.path.join(result_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.distributed
def test_two_process_gloo_gradient_equals_single_process(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_dist_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)

    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3, dtype=torch.float64)
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randn(8, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 2, 0, 3, 3, 3])
    radapter.mpm_nce_loss(
        F.normalize(lin(x), dim=-1), F.normalize(lin(y), dim=-1), labels, label_smoothing=0.1
    ).backward()
    for rank in range(2):
        grads = torch.load(os.path.join(tmp_path, f"rank{rank}.pt"), weights_only=True)
        for n, p in lin.named_parameters():
            assert torch.allclose(grads[n], p.grad, atol=1e-10), (rank, n)


def naive_sigmoid_loss(f, g, c, t, b):
    """Direct transcription of the docstring: −(1/B) Σ_i Σ_j log σ(s_ij (t f_i·g_j + b))."""
    n = len(c)
    total = 0.0
    for i in range(n):
        for j in range(n):
            s = 1.0 if c[i] == c[j] else -1.0
            z = t * float(f[i] @ g[j]) + b
            total -= math.log(1.0 / (1.0 + math.exp(-s * z)))
    return total / n


@pytest.mark.parametrize("labels", [[0, 0, 1, 2, 2, 2], [0, 1, 2, 3, 4, 5], [3, 3, 3, 3, 3, 3]])
@pytest.mark.parametrize("t,b", [(10.0, -10.0), (112.0, -16.5), (1.0, 0.0)])
def test_sigmoid_loss_matches_naive_loop(labels, t, b):
    from radapter.losses import sigmoid_loss

    f, g = _feats()
    got = sigmoid_loss(f, g, torch.tensor(labels), logit_scale=t, logit_bias=b)
    assert got.item() == pytest.approx(naive_sigmoid_loss(f, g, labels, t, b), rel=1e-9)


def test_sigmoid_loss_without_labels_is_open_clips_siglip_loss():
    from open_clip.loss import SigLipLoss

    from radapter.losses import sigmoid_loss

    f, g = _feats()
    t, b = torch.tensor(10.0, dtype=torch.float64), torch.tensor(-10.0, dtype=torch.float64)
    ref = SigLipLoss(rank=0, world_size=1)(f, g, t, b)
    assert sigmoid_loss(f, g, None, t, b).item() == pytest.approx(ref.item(), rel=1e-12)
    # same-group pairs turn from negatives into positives: the loss changes
    assert sigmoid_loss(f, g, torch.tensor([0, 0, 1, 1, 2, 2]), t, b).item() != pytest.approx(ref.item())
    assert sigmoid_loss(f, g, None, t, None).item() == pytest.approx(sigmoid_loss(f, g, None, t, 0.0).item())


def _sigmoid_dist_worker(rank, world, port, result_dir):
    import torch.distributed as dist

    from radapter.losses import sigmoid_loss

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3, dtype=torch.float64)
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randn(8, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 2, 0, 3, 3, 3])
    sl = slice(rank * 4, (rank + 1) * 4)
    f = F.normalize(lin(x[sl]), dim=-1)
    g = F.normalize(lin(y[sl]), dim=-1)
    sigmoid_loss(f, g, labels[sl], logit_scale=10.0, logit_bias=-10.0).backward()
    for p in lin.parameters():  # what DDP does
        dist.all_reduce(p.grad)
        p.grad /= world
    torch.save({n: p.grad for n, p in lin.named_parameters()}, os.path.join(result_dir, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.distributed
def test_sigmoid_loss_two_process_gloo_gradient_equals_single_process(tmp_path):
    import socket

    import torch.multiprocessing as mp

    from radapter.losses import sigmoid_loss

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_sigmoid_dist_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)

    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3, dtype=torch.float64)
    x = torch.randn(8, 4, dtype=torch.float64)
    y = torch.randn(8, 4, dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 2, 0, 3, 3, 3])
    sigmoid_loss(F.normalize(lin(x), dim=-1), F.normalize(lin(y), dim=-1), labels, 10.0, -10.0).backward()
    for rank in range(2):
        grads = torch.load(os.path.join(tmp_path, f"rank{rank}.pt"), weights_only=True)
        for n, p in lin.named_parameters():
            assert torch.allclose(grads[n], p.grad, atol=1e-10), (rank, n)
