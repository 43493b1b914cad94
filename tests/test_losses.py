"""Each equation against a slow, explicit pixel-by-pixel computation on random tensors."""

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from latentseg import losses as L

N, C, K, H, W = 2, 4, 3, 5, 6


def _inputs(seed=0, ignore_frac=0.2):
    g = torch.Generator().manual_seed(seed)
    lat_logits = torch.randn(N, K, H, W, generator=g, dtype=torch.float64)
    sem_logits = torch.randn(N, C, H, W, generator=g, dtype=torch.float64)
    target = torch.randint(0, C, (N, H, W), generator=g)
    target[torch.rand(N, H, W, generator=g) < ignore_frac] = 255
    return lat_logits, sem_logits, target


def _pixels(target):
    return [(n, h, w) for n in range(N) for h in range(H) for w in range(W)]


def slow_latent(lat_prob, target):
    valid = [(n, h, w) for n, h, w in _pixels(target) if target[n, h, w] != 255]
    joint = [[0.0] * K for _ in range(C)]
    for n, h, w in valid:
        for l in range(K):
            joint[int(target[n, h, w])][l] += float(lat_prob[n, l, h, w]) / len(valid)
    loss = 0.0
    for l in range(K):
        col = sum(joint[c][l] for c in range(C))
        for c in range(C):
            if joint[c][l] > 0:
                loss -= joint[c][l] * math.log(joint[c][l] / col)
    return loss


def test_latent_loss_matches_explicit_conditional_entropy():
    lat, _, target = _inputs()
    prob = lat.softmax(1)
    assert L.latent_loss(prob, target, C).item() == pytest.approx(slow_latent(prob, target), rel=1e-5)


def test_latent_loss_is_zero_for_a_one_to_one_mapping_and_log_c_for_one_latent_class():
    target = torch.randint(0, C, (N, H, W))
    onehot = F.one_hot(target, C).permute(0, 3, 1, 2).double()  # latent class = semantic class
    assert L.latent_loss(onehot, target, C).item() == pytest.approx(0.0, abs=1e-9)
    single = torch.ones(N, 1, H, W, dtype=torch.float64)  # every pixel in one latent class: H(C|L) = H(C)
    freq = torch.bincount(target.flatten(), minlength=C).double() / target.numel()
    entropy = -(freq[freq > 0] * freq[freq > 0].log()).sum()
    assert L.latent_loss(single, target, C).item() == pytest.approx(entropy.item(), rel=1e-6)  # float32 inside


def test_latent_loss_ignores_255_pixels():
    lat, _, target = _inputs()
    prob = lat.softmax(1)
    changed = prob.clone()
    changed[target.unsqueeze(1).expand_as(prob) == 255] = 1.0 / K  # alter only ignored pixels
    assert L.latent_loss(prob, target, C).item() == pytest.approx(L.latent_loss(changed, target, C).item())


def test_latent_loss_gradient_flows_through_joint_and_conditional():
    lat, _, target = _inputs()
    lat.requires_grad_(True)
    L.latent_loss(lat.softmax(1), target, C).backward()
    auto = lat.grad.clone()
    # finite differences on one latent logit of a valid pixel
    n, h, w = next(tuple(i) for i in (target != 255).nonzero())
    eps = 1e-6
    for l in range(K):
        plus, minus = lat.detach().clone(), lat.detach().clone()
        plus[n, l, h, w] += eps
        minus[n, l, h, w] -= eps
        fd = (slow_latent(plus.softmax(1), target) - slow_latent(minus.softmax(1), target)) / (2 * eps)
        assert auto[n, l, h, w].item() == pytest.approx(fd, rel=1e-4, abs=1e-8)
    assert auto[(target == 255).unsqueeze(1).expand_as(auto)].abs().max() == 0


def test_latent_loss_of_a_batch_without_labels_is_zero_not_nan():
    target = torch.full((N, H, W), 255)
    assert L.latent_loss(torch.rand(N, K, H, W).softmax(1), target, C).item() == 0.0


def test_cooccurrence_moving_average_and_conditional():
    lat, _, target = _inputs()
    prob = lat.softmax(1).float()
    alpha = 0.25
    co = L.CoOccurrence(C, K, alpha)
    expected = torch.zeros(C, K, dtype=torch.float64)
    for step in range(3):
        p = prob.roll(step, 0)
        counts = torch.zeros(C, K, dtype=torch.float64)
        for n, h, w in _pixels(target):
            if target[n, h, w] != 255:
                counts[int(target[n, h, w])] += p[n, :, h, w].double()
        expected = (1 - alpha) * expected + alpha * counts  # eq. (7), M^0 = 0
        co.update(p, target)
    assert torch.allclose(co.matrix.double(), expected, rtol=1e-5)
    p_lc = co.p_latent_given_class()
    for c in range(C):  # eq. (8)
        if expected[c].sum() > 0:
            assert torch.allclose(p_lc[c].double(), expected[c] / expected[c].sum(), rtol=1e-5)
    assert "matrix" in co.state_dict()
    assert not co.matrix.requires_grad


def test_cooccurrence_update_carries_no_gradient_and_unseen_class_is_uniform():
    co = L.CoOccurrence(C, K, 0.5)
    prob = torch.rand(N, K, H, W, requires_grad=True).softmax(1)
    target = torch.zeros(N, H, W, dtype=torch.long)  # only class 0 seen
    co.update(prob, target)
    assert co.matrix.grad_fn is None
    p = co.p_latent_given_class()
    assert torch.allclose(p[1:], torch.full((C - 1, K), 1.0 / K))


def test_semantic_to_latent_mapping_eq6():
    _, sem, _ = _inputs()
    sem_prob = sem.softmax(1)
    p_lc = torch.rand(C, K, dtype=torch.float64)
    p_lc = p_lc / p_lc.sum(1, keepdim=True)
    mapped = L.semantic_to_latent(sem_prob, p_lc)
    n, h, w = 1, 2, 3
    for l in range(K):
        slow = sum(p_lc[c, l] * sem_prob[n, c, h, w] for c in range(C)).item()
        assert mapped[n, l, h, w].item() == pytest.approx(slow)
    assert torch.allclose(mapped.sum(1), torch.ones(N, H, W, dtype=torch.float32), atol=1e-5)


def test_consistency_loss_eq9_and_its_gradients_reach_only_the_semantic_branch():
    lat, sem, _ = _inputs()
    lat.requires_grad_(True)
    sem.requires_grad_(True)
    p_lc = torch.rand(C, K, dtype=torch.float64, requires_grad=True)
    p_norm = p_lc / p_lc.sum(1, keepdim=True)
    lat_prob, sem_prob = lat.softmax(1), sem.softmax(1)
    loss = L.consistency_loss(lat_prob, sem_prob, p_norm)
    slow = 0.0
    for n, h, w in _pixels(None):
        for l in range(K):
            mapped = sum(p_norm[c, l] * sem_prob[n, c, h, w] for c in range(C)).item()
            slow -= lat_prob[n, l, h, w].item() * math.log(mapped)
    assert loss.item() == pytest.approx(slow / (N * H * W), rel=1e-5)
    loss.backward()
    assert sem.grad is not None and sem.grad.abs().sum() > 0
    assert lat.grad is None  # the latent prediction is a detached target
    assert p_lc.grad is None  # P(l|c) carries no gradient


def test_cross_entropy_eq1_averages_valid_pixels():
    _, sem, target = _inputs()
    valid = [(n, h, w) for n, h, w in _pixels(target) if target[n, h, w] != 255]
    logp = sem.log_softmax(1)
    slow = -sum(float(logp[n, int(target[n, h, w]), h, w]) for n, h, w in valid) / len(valid)
    assert L.cross_entropy_loss(sem, target).item() == pytest.approx(slow, rel=1e-5)


def slow_ohem(logits, target, tau, m):
    """UniMatch's ProbOhemCrossEntropy2d pixel by pixel: keep the valid pixels whose label's probability is at most
    max(tau, the m-th smallest), or every valid pixel when m is 0 or above their count; mean -log p over those."""
    valid = [(n, h, w) for n, h, w in _pixels(target) if target[n, h, w] != 255]
    prob = {px: float(logits[px[0], :, px[1], px[2]].softmax(0)[int(target[px])]) for px in valid}
    kept = valid
    if 0 < m <= len(valid):
        cutoff = max(tau, sorted(prob.values())[m - 1])
        kept = [px for px in valid if prob[px] <= cutoff]
    return -sum(math.log(prob[px]) for px in kept) / len(kept), len(kept)


@pytest.mark.parametrize("m", [0, 8, 30, 43, 44])
def test_ohem_cross_entropy_against_loops(m):
    """43 valid pixels, 19 of them with p <= tau. m = 8: fewer than those (the cutoff stays tau); 30: more (it
    rises to the 30th smallest p); 43: every valid pixel, by the cutoff; 44: more than the valid pixels, and 0: no
    mining (every valid pixel counts, as theirs)."""
    _, sem, target = _inputs()
    sem, tau = sem.float() * 2, 0.05
    probs = sem.softmax(1).gather(1, target.clamp_max(C - 1).unsqueeze(1)).squeeze(1)[target != 255]
    assert len(probs) == 43 and int((probs <= tau).sum()) == 19  # each case is the one it names
    logits = sem.clone().requires_grad_(True)
    got = L.ohem_cross_entropy_loss(logits, target, tau, m)
    slow, kept = slow_ohem(sem, target, tau, m)
    assert got.item() == pytest.approx(slow, rel=1e-5)
    assert kept == {0: 43, 8: 19, 30: 30, 43: 43, 44: 43}[m]
    got.backward()  # the gradient reaches the kept pixels only
    assert int((logits.grad.abs().sum(1) > 0).sum()) == kept


def test_ohem_of_a_batch_without_valid_pixels_is_zero_not_nan():
    _, sem, target = _inputs()
    assert L.ohem_cross_entropy_loss(sem, torch.full_like(target, 255), 0.7, 5).item() == 0.0


OHEM_SLICES = (slice(0, 1), slice(1, 3))  # 3 images split unevenly over 2 processes


def _ohem_inputs():
    g = torch.Generator().manual_seed(3)
    target = torch.randint(0, C, (3, H, W), generator=g)
    target[torch.rand(3, H, W, generator=g) < 0.2] = 255
    return torch.randn(3, C, H, W, generator=g) * 2, target


def _ohem_and_grad(part, split, m):
    logits, target = _ohem_inputs()
    local = logits[part].clone().requires_grad_(True)
    loss = L.ohem_cross_entropy_loss(local, target[part], 0.05, m, split=split)
    loss.backward()
    return loss.detach(), local.grad


class Exchange:
    """Collectives between threads, one thread per process: each posts its tensor, then every one reads all."""

    def __init__(self, world: int) -> None:
        self.barrier, self.posts = threading.Barrier(world), [None] * world

    def all(self, rank: int, x: torch.Tensor) -> list[torch.Tensor]:
        self.posts[rank] = x
        self.barrier.wait()
        posts = list(self.posts)
        self.barrier.wait()  # nobody posts again before every one has read
        return posts


@dataclass
class ThreadSplit:
    """``SplitBatch``'s collectives (without the gradient of ``sum``) among the threads of an ``Exchange``."""

    world: int
    rank: int
    exchange: Exchange

    def sum(self, x):
        return torch.stack(self.exchange.all(self.rank, x.detach())).sum(0)

    def gather(self, x):
        return torch.cat(self.exchange.all(self.rank, x))


# valid pixels: 23 in the first slice, 47 in the second; 20 fit in either, 40 not in the first, 200 not in the batch
@pytest.mark.parametrize("m", [20, 40, 200])
def test_ohem_over_a_split_batch_mines_the_whole_batch(m):
    """Each process holds part of the batch; the m-th smallest probability and the valid count are the whole
    batch's, so the processes' losses average to the one-process loss and their gradients (DDP-averaged) agree."""
    exchange = Exchange(2)
    with ThreadPoolExecutor(2) as pool:
        ranks = list(pool.map(lambda r: _ohem_and_grad(OHEM_SLICES[r], ThreadSplit(2, r, exchange), m), (0, 1)))
    loss, grad = _ohem_and_grad(slice(0, 3), None, m)
    assert (ranks[0][0] + ranks[1][0]).item() / 2 == pytest.approx(loss.item(), rel=1e-6)
    for (_, local_grad), part in zip(ranks, OHEM_SLICES, strict=True):
        assert torch.allclose(local_grad / 2, grad[part], atol=1e-7), m


def test_adversarial_eq2_and_discriminator_eq10():
    g = torch.Generator().manual_seed(1)
    d_pred = torch.randn(N, 1, H, W, generator=g)
    d_gt = torch.randn(N, 1, H, W, generator=g)
    valid = torch.rand(N, H, W, generator=g) > 0.3
    sig = torch.sigmoid
    slow_adv = -sum(math.log(sig(d_pred[n, 0, h, w])) for n, h, w in _pixels(None) if valid[n, h, w]) / valid.sum()
    assert L.adversarial_loss(d_pred, valid).item() == pytest.approx(float(slow_adv), rel=1e-5)
    slow_all = -sum(math.log(sig(d_pred[n, 0, h, w])) for n, h, w in _pixels(None)) / (N * H * W)
    assert L.adversarial_loss(d_pred).item() == pytest.approx(slow_all, rel=1e-5)
    fake = -sum(math.log(1 - sig(d_pred[n, 0, h, w])) for n, h, w in _pixels(None)) / (N * H * W)
    real = -sum(math.log(sig(d_gt[n, 0, h, w])) for n, h, w in _pixels(None) if valid[n, h, w]) / valid.sum()
    assert L.discriminator_loss(d_pred, d_gt, None, valid).item() == pytest.approx(float(fake + real), rel=1e-5)


def test_one_hot_map_zeroes_ignored_pixels():
    _, _, target = _inputs()
    onehot = L.one_hot_map(target, C)
    assert onehot.shape == (N, C, H, W)
    assert torch.all(onehot.sum(1) == (target != 255).float())


def test_symmetric_kl_is_zero_for_equal_and_positive_otherwise():
    _, sem, _ = _inputs()
    p = sem.softmax(1)
    assert L.symmetric_kl_loss(p, p).item() == pytest.approx(0.0, abs=1e-9)
    q = sem.roll(1, 1).softmax(1)
    slow = sum(float((p[n, :, h, w] - q[n, :, h, w]) @ (p[n, :, h, w].log() - q[n, :, h, w].log()))
               for n, h, w in _pixels(None)) / (N * H * W)
    assert L.symmetric_kl_loss(p, q).item() == pytest.approx(slow, rel=1e-5)


def test_self_training_uses_only_confident_pixels():
    _, sem, _ = _inputs()
    d = torch.full((N, 1, H, W), -10.0)
    assert L.self_training_loss(sem, d, 0.2).item() == 0.0  # nothing confident: no signal, no NaN
    d[0, 0, 1, 1] = 10.0
    expected = F.cross_entropy(sem[0:1, :, 1, 1].float(), sem[0:1, :, 1, 1].argmax(1))
    assert L.self_training_loss(sem, d, 0.2).item() == pytest.approx(expected.item(), rel=1e-5)


def test_each_method_weighs_its_terms_in_one_criterion():
    """Eqs. (11)-(12) with the paper's weights, and the baselines' sums, each written once in its method module."""
    from latentseg.methods import hung, latent, s4gan, unimatch

    ce, lat, adv_l, cons, adv_u = (torch.tensor(v) for v in (1.0, 2.0, 3.0, 4.0, 5.0))
    paper = latent.criterion(ce, lat, adv_l, cons, adv_u, lambda_latent=1.0, lambda_adv=0.01, lambda_cons=1.0,
                             lambda_unlabeled=0.1)
    assert paper.item() == pytest.approx((1 + 2 + 0.01 * 3) + 0.1 * (4 + 0.01 * 5))
    assert hung.criterion(ce, adv_l, adv_u, cons, lambda_adv=0.01, lambda_semi_adv=0.001,
                          lambda_semi=0.1).item() == pytest.approx(1 + 0.03 + 0.005 + 0.4)
    assert s4gan.criterion(ce, lat, adv_l, lambda_fm=0.1, lambda_st=1.0).item() == pytest.approx(1 + 0.2 + 3)
    weights = {"lambda_x": 1.0, "lambda_latent": 1.0, "lambda_s1": 0.25, "lambda_s2": 0.25, "lambda_fp": 0.5,
               "lambda_unlabeled_cons": 0.1}
    total = unimatch.criterion(ce, lat, adv_l, cons, adv_u, ce, scale=0.5, **weights)
    assert total.item() == pytest.approx(0.5 * (1 + 2 + 0.75 + 1 + 2.5 + 0.1))


def _disagreeing_logits(threshold: float, strict: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 discriminator logits near the logit of ``threshold`` on which the decision taken in bf16 (the logit
    and its sigmoid rounded to bf16) differs from the float32 one: below the threshold in float32 but passed by
    bf16, and above it but refused by bf16 (either may be empty, as the rounding goes)."""
    def passes(score: torch.Tensor) -> torch.Tensor:
        return score > threshold if strict else score >= threshold

    near = torch.logit(torch.tensor(threshold, dtype=torch.float64)).item()
    grid = torch.linspace(near - 0.02, near + 0.02, 40001, dtype=torch.float64).float()
    fp32, bf16 = passes(torch.sigmoid(grid)), passes(torch.sigmoid(grid.bfloat16()).float())
    below, above = grid[~fp32 & bf16], grid[fp32 & ~bf16]
    assert len(below) + len(above) > 0, "bf16 and float32 decisions agree everywhere near the threshold"
    return below, above


@pytest.mark.parametrize("threshold", [0.2, 0.6, 0.7])  # Hung et al.'s mask_T; s4GAN's VOC and Cityscapes
def test_threshold_decisions_are_taken_in_float32(threshold):
    """The sigmoid of the discriminator's logits and the comparison with the threshold are float32, whatever the
    logits' dtype (bf16 under autocast): near the threshold a bf16 decision would select other images or pixels."""
    logits = torch.randn(1, C, H, W, dtype=torch.bfloat16)
    below, above = _disagreeing_logits(threshold, strict=True)  # s4GAN: sigmoid(D) > threshold
    assert all(L.s4gan_self_training_loss(logits, d.view(1, 1), threshold).item() == 0.0 for d in below[-3:])
    assert all(L.s4gan_self_training_loss(logits, d.view(1, 1), threshold).item() > 0.0 for d in above[:3])
    below, above = _disagreeing_logits(threshold, strict=False)  # Hung et al.: sigmoid(D) >= mask_T
    pixels = [d.view(1, 1, 1, 1).expand(1, 1, H, W) for d in [*below[-3:], *above[:3]]]
    expected = [False] * len(below[-3:]) + [True] * len(above[:3])
    assert [L.self_training_loss(logits, d, threshold).item() > 0.0 for d in pixels] == expected
