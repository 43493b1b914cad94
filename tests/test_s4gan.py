"""s4GAN (Mittal et al.): its losses against explicit loops over images and pixels, and its discriminator."""

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn

from latentseg import losses as L
from latentseg.methods import s4gan
from latentseg.models.s4gan_discriminator import S4GANDiscriminator, discriminator_input, image_to_unit_range

N, C, H, W, K = 3, 4, 5, 6, 7


def _logits(seed=0, n=N):
    return torch.randn(n, C, H, W, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _pixels():
    return [(h, w) for h in range(H) for w in range(W)]


# --- feature matching ---------------------------------------------------------------------------------------------

def test_feature_matching_is_the_mean_absolute_difference_of_batch_means():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(2, K, generator=g), torch.randn(N, K, generator=g)  # the two sides may differ in N
    slow = sum(abs(sum(float(real[n, k]) for n in range(2)) / 2 - sum(float(fake[n, k]) for n in range(N)) / N)
               for k in range(K)) / K
    assert L.s4gan_feature_matching_loss(real, fake).item() == pytest.approx(slow, rel=1e-6)
    assert L.s4gan_feature_matching_loss(real[:, :, None, None], fake[:, :, None, None]).item() == pytest.approx(slow)


def test_feature_matching_sends_gradients_to_both_sides():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(2, K, generator=g, requires_grad=True)
    fake = torch.randn(N, K, generator=g, requires_grad=True)
    L.s4gan_feature_matching_loss(real, fake).backward()
    sign = torch.sign(real.detach().mean(0) - fake.detach().mean(0))  # d|a - b|/da = sign(a - b)
    assert torch.allclose(real.grad, sign.expand(2, K) / (K * 2))
    assert torch.allclose(fake.grad, -sign.expand(N, K) / (K * N))


# --- self-training ------------------------------------------------------------------------------------------------

def slow_self_training(logits, d_logits, threshold):
    chosen = [n for n in range(logits.shape[0]) if 1 / (1 + math.exp(-float(d_logits[n, 0]))) > threshold]
    total = 0.0
    for n in chosen:
        for h, w in _pixels():
            scores = [float(logits[n, c, h, w]) for c in range(C)]
            top = max(scores)
            total -= top - math.log(sum(math.exp(s) for s in scores))  # -log softmax at the argmax
    return total / max(len(chosen) * H * W, 1)


@pytest.mark.parametrize("d_values", [(2.0, -2.0, 0.5), (3.0, 3.0, 3.0)], ids=["some-pass", "all-pass"])
def test_self_training_labels_selected_images_with_their_own_argmax(d_values):
    logits = _logits()
    d = torch.tensor(d_values).view(N, 1)  # sigmoid: 0.88, 0.12, 0.62 / all 0.95
    loss = L.s4gan_self_training_loss(logits, d, 0.6)
    assert loss.item() == pytest.approx(slow_self_training(logits, d, 0.6), rel=1e-6)
    if min(d_values) > 0:  # every image passes: the plain pixel mean of the argmax cross-entropy
        assert loss.item() == pytest.approx(F.cross_entropy(logits, logits.argmax(1)).item(), rel=1e-6)


def test_self_training_threshold_is_strict():
    logits, d = _logits(), torch.zeros(N, 1)  # sigmoid(0) = 0.5 exactly
    assert L.s4gan_self_training_loss(logits, d, 0.5).item() == 0.0
    assert L.s4gan_self_training_loss(logits, d, 0.49).item() > 0


def test_self_training_when_no_image_passes_adds_nothing_and_does_not_fail():
    logits = _logits().requires_grad_(True)
    d = torch.full((N, 1), -3.0, requires_grad=True)
    loss = L.s4gan_self_training_loss(logits, d, 0.7)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(logits.grad == 0) and torch.isfinite(logits.grad).all()
    total = s4gan.criterion(torch.tensor(1.5), torch.tensor(0.2), loss.detach(), lambda_fm=0.1, lambda_st=1.0)
    assert total.item() == pytest.approx(1.5 + 0.1 * 0.2)


def test_self_training_gradient_treats_pseudo_labels_as_constants():
    logits = _logits().requires_grad_(True)
    d = torch.tensor([[2.0], [-2.0], [0.5]], requires_grad=True)  # images 0 and 2 pass 0.6
    L.s4gan_self_training_loss(logits, d, 0.6).backward()
    fixed = F.one_hot(logits.detach().argmax(1), C).permute(0, 3, 1, 2).double()
    expected = (logits.detach().softmax(1) - fixed) / (2 * H * W)  # d CE / d logits with the labels held fixed
    expected[1] = 0  # an image that did not pass gets nothing
    assert torch.allclose(logits.grad, expected)
    assert d.grad is None  # the selection is not differentiated


# --- discriminator loss and total --------------------------------------------------------------------------------

def test_discriminator_loss_is_image_level_bce_halved_and_equals_their_sigmoid_bceloss():
    g = torch.Generator().manual_seed(3)
    fake, real = torch.randn(N, 1, generator=g) * 3, torch.randn(2, 1, generator=g) * 3
    sig = torch.sigmoid
    slow = (-sum(math.log(1 - sig(fake[n, 0])) for n in range(N)) / N
            - sum(math.log(sig(real[n, 0])) for n in range(2)) / 2) / 2
    ours = L.s4gan_discriminator_loss(fake, real)
    assert ours.item() == pytest.approx(float(slow), rel=1e-5)
    bce = nn.BCELoss()  # train_s4GAN.py: sigmoid inside the discriminator, BCELoss on its output
    theirs = (bce(sig(fake), torch.zeros(N, 1)) + bce(sig(real), torch.ones(2, 1))) / 2
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-5)


def test_generator_total_weights():
    total = s4gan.criterion(torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0), lambda_fm=0.1, lambda_st=1.0)
    assert total.item() == pytest.approx(1.0 + 0.1 * 2.0 + 1.0 * 3.0)


# --- discriminator ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("num_classes", "crop", "their_pool"),
                         [(21, (321, 321), (20, 20)), (19, (256, 512), (16, 32))], ids=["voc", "cityscapes"])
def test_discriminator_shapes_and_pool_equal_theirs(num_classes, crop, their_pool):
    torch.manual_seed(0)
    disc = S4GANDiscriminator(num_classes, width=64).eval()
    last = {}
    disc.convs[-1].register_forward_hook(lambda m, i, out: last.update(act=F.leaky_relu(out, 0.2)))
    x = torch.rand(2, num_classes + 3, *crop)
    with torch.no_grad():
        logit, features = disc(x)
    assert logit.shape == (2, 1) and features.shape == (2, 512)
    assert last["act"].shape[-2:] == their_pool  # their AvgPool2d covers the whole map: a global average
    assert torch.allclose(features, nn.AvgPool2d(their_pool)(last["act"]).flatten(1), atol=1e-6)
    assert torch.allclose(features, last["act"].mean((2, 3)), atol=1e-6)


def test_discriminator_works_at_the_demo_crop_and_dropout_follows_train_and_eval():
    torch.manual_seed(0)
    disc = S4GANDiscriminator(C, width=8)
    x = torch.rand(2, C + 3, 48, 48)
    a, b = disc(x), disc(x)
    assert a[0].shape == (2, 1) and a[1].shape == (2, 64)
    assert not torch.equal(a[1], b[1])  # train(): Dropout2d draws new masks each pass
    disc.eval()
    a, b = disc(x), disc(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_bce_with_logits_on_our_logit_equals_their_sigmoid_and_bceloss():
    torch.manual_seed(1)
    disc = S4GANDiscriminator(C, width=8).eval()
    logit, _ = disc(torch.rand(4, C + 3, 32, 32))
    for label in (0.0, 1.0):
        target = torch.full_like(logit, label)
        ours = F.binary_cross_entropy_with_logits(logit, target)
        theirs = nn.BCELoss()(torch.sigmoid(logit), target)
        assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


def test_discriminator_input_stacks_probabilities_and_the_unit_range_image():
    g = torch.Generator().manual_seed(4)
    target = torch.randint(0, C, (2, H, W), generator=g)
    target[0, 0, :3] = 255  # ignored pixels: an all-0 one-hot column, as in their one_hot()
    images = torch.randn(2, 3, H, W, generator=g) * 60 - 20  # mean-subtracted pixel values
    x = discriminator_input(L.one_hot_map(target, C), images)
    assert x.shape == (2, C + 3, H, W)
    assert torch.all(x[:, :C].sum(1) == (target != 255).float())
    assert x[:, C:].min().item() == 0.0 and x[:, C:].max().item() == pytest.approx(1.0)
    assert torch.allclose(x[:, C:], (images - images.min()) / (images.max() - images.min()))  # one affine map
    prob = _logits(n=2).float().softmax(1).requires_grad_(True)
    discriminator_input(prob, images).sum().backward()
    assert torch.all(prob.grad == 1)  # the prediction keeps its gradient
    with pytest.raises(ValueError, match="same batch size"):
        discriminator_input(prob[:, :, :2], images)


def test_image_to_unit_range_of_a_constant_batch_is_zero_not_nan():
    assert torch.equal(image_to_unit_range(torch.full((2, 3, 4, 4), 7.0)), torch.zeros(2, 3, 4, 4))


# --- a batch split over two processes gives the losses and gradients of one process -------------------------------

def _split_inputs():
    g = torch.Generator().manual_seed(5)
    return {"fm": (torch.randn(N, K, generator=g), torch.randn(N, K, generator=g)),
            "st": (torch.randn(N, C, H, W, generator=g), torch.tensor([[-3.0], [3.0], [0.2]])),  # rank 0: none
            "d": (torch.randn(N, 1, generator=g), torch.randn(N, 1, generator=g))}


SPLIT_LOSSES = {"fm": L.s4gan_feature_matching_loss, "d": L.s4gan_discriminator_loss,
                "st": lambda logits, d, split=None: L.s4gan_self_training_loss(logits, d, 0.5, split)}
SLICES = (slice(0, 1), slice(1, N))  # uneven: 1 + 2 images


def _losses_and_grads(inputs, part, split):
    out = {}
    for name, loss_fn in SPLIT_LOSSES.items():
        local = [t[part].clone().requires_grad_(True) for t in inputs[name]]
        loss = loss_fn(*local, split=split)
        loss.backward()
        out[name] = (loss.detach(), [t.grad for t in local])
    return out


def _split_worker(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.save(_losses_and_grads(_split_inputs(), SLICES[rank], L.SplitBatch(world)), f"{out_dir}/rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_split_batch_gives_whole_batch_losses_and_ddp_gradients(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_split_worker, args=(2, port, str(tmp_path)), nprocs=2)
    whole = _losses_and_grads(_split_inputs(), slice(0, N), None)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for name, (loss, grads) in whole.items():
        for rank, part in enumerate(SLICES):
            local_loss, local_grads = ranks[rank][name]
            if name == "fm":  # every process holds the whole batch's loss
                assert local_loss.item() == pytest.approx(loss.item(), rel=1e-6)
            for g_whole, g_local in zip(grads, local_grads, strict=True):
                if g_whole is None:
                    assert g_local is None
                    continue
                # DDP averages over the 2 processes: each slice's gradient is twice its share of the whole
                assert torch.allclose(g_local / 2, g_whole[part], atol=1e-7), (name, rank)
        if name != "fm":  # batch means: the processes' values average to the whole batch's
            assert (ranks[0][name][0] + ranks[1][name][0]).item() / 2 == pytest.approx(loss.item(), rel=1e-6)
