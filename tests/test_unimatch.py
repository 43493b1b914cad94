"""UniMatch (Table 6, beyond the paper): each term against explicit loops, the confidence mask's denominator, CutMix
mixing image, pseudo-label and mask alike, the weak view detached, one step moving the network, and one iteration
against a replica of the statements of UniMatch's ``unimatch.py`` (lines 135-188) on fixed tensors."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from latentseg import losses as L
from latentseg.methods import unimatch as um
from latentseg.methods import unimatch_views as views
from latentseg.methods.base import Batch
from latentseg.models.deeplab import SegOutput
from latentseg.train.step import make_optimizers, one_update
from tests.train.speed_fixtures import NUM_CLASSES, one_thread, step_and_batch, tiny_config  # noqa: F401

C = 4  # classes of the toy tensors


def explicit_confident_ce(logits, pseudo, conf, valid, t):
    total, count = 0.0, 0
    n, _, h, w = logits.shape
    for i in range(n):
        for y in range(h):
            for x in range(w):
                if not valid[i, y, x]:
                    continue
                count += 1
                if conf[i, y, x] >= t:
                    z = logits[i, :, y, x].double()
                    total += float(torch.logsumexp(z, 0) - z[pseudo[i, y, x]])
    return total / max(count, 1)


def test_the_unlabeled_term_against_loops():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, C, 5, 6, generator=g) * 3
    pseudo = torch.randint(0, C, (2, 5, 6), generator=g)
    conf = torch.rand(2, 5, 6, generator=g)
    valid = torch.rand(2, 5, 6, generator=g) > 0.2
    got = um.confident_ce(logits, pseudo, conf, valid, 0.5)
    assert float(got) == pytest.approx(explicit_confident_ce(logits, pseudo, conf, valid, 0.5), rel=1e-5)


def test_the_denominator_counts_every_valid_pixel_not_only_the_confident_ones():
    logits = torch.zeros(1, C, 2, 5)  # every pixel's cross-entropy is log C
    pseudo = torch.zeros(1, 2, 5, dtype=torch.long)
    conf = torch.zeros(1, 2, 5)
    conf[0, 0, 0] = 0.95  # one confident pixel, exactly at the threshold (>=)
    valid = torch.ones(1, 2, 5, dtype=torch.bool)
    valid[0, 1, 4] = False  # an ignored pixel: out of the denominator
    assert float(um.confident_ce(logits, pseudo, conf, valid, 0.95)) == pytest.approx(math.log(C) / 9)
    conf[0, 0, 0] = 0.9499
    assert float(um.confident_ce(logits, pseudo, conf, valid, 0.95)) == 0.0


def test_the_labeled_term_and_total_against_loops(one_thread):  # noqa: F811
    nets, batch = step_and_batch(tiny_config(objective="unimatch"))
    torch.manual_seed(0)
    with torch.no_grad():
        parts = nets.losses(batch, step=0).parts
        logits = F.interpolate(nets.segment(batch.image)[0].semantic, size=batch.mask.shape[-2:],
                               mode="bilinear", align_corners=True)
    z, mask = logits.double().numpy(), batch.mask.numpy()
    total, count = 0.0, 0
    for i, y, x in itertools.product(*(range(s) for s in mask.shape)):
        if mask[i, y, x] != 255:
            zs = z[i, :, y, x]
            total, count = total + math.log(sum(math.exp(v) for v in zs)) - zs[mask[i, y, x]], count + 1
    assert float(parts["x"]) == pytest.approx(total / count, rel=1e-4)
    assert set(parts) == {"x", "s1", "s2", "fp"}


def test_with_ohem_the_labeled_term_is_the_hard_pixels_cross_entropy(one_thread):  # noqa: F811
    """Their Cityscapes config (unimatch.py:68-73): L_x is OHEM; the other terms are unchanged."""
    cfg = tiny_config(objective="unimatch", unimatch={"ohem": True, "ohem_threshold": 0.7, "ohem_min_kept": 500})
    nets, batch = step_and_batch(cfg)
    torch.manual_seed(0)
    with torch.no_grad():
        parts = nets.losses(batch, step=0).parts
        logits = F.interpolate(nets.segment(batch.image)[0].semantic, size=batch.mask.shape[-2:],
                               mode="bilinear", align_corners=True)
    ohem = L.ohem_cross_entropy_loss(logits, batch.mask, 0.7, 500)
    assert float(parts["x"]) == pytest.approx(float(ohem), rel=1e-5)
    assert float(ohem) != pytest.approx(float(L.cross_entropy_loss(logits, batch.mask)), rel=1e-3)  # it mined
    assert set(parts) == {"x", "s1", "s2", "fp"}


def test_cutmix_mixes_image_pseudo_label_and_mask_with_one_box():
    torch.manual_seed(3)
    n, h, w = 3, 12, 10
    box = views.cutmix_boxes(n, h, w, 1.0, (0.02, 0.4), (0.3, 1 / 0.3))
    image = torch.randn(n, 3, h, w)
    targets = um.Targets(torch.randint(0, C, (n, h, w)), torch.rand(n, h, w), torch.rand(n, h, w) > 0.3)
    mixed_image, mixed = views.cutmix(image, views.mix_source(image), box), targets.mixed(box)
    for i in range(n):
        src = (i - 1) % n  # each image takes the box from the one before it in the batch
        inside = box[i].nonzero()
        assert len(inside) > 0
        ys, xs = inside[:, 0], inside[:, 1]  # a rectangle that fits the crop
        assert len(inside) == (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
        assert 0.02 * h * w - (h + w) <= len(inside) <= 0.4 * h * w
        for y in range(h):
            for x in range(w):
                k = src if box[i, y, x] else i
                assert torch.equal(mixed_image[i, :, y, x], image[k, :, y, x])
                assert mixed.pseudo[i, y, x] == targets.pseudo[k, y, x]
                assert mixed.confidence[i, y, x] == targets.confidence[k, y, x]
                assert mixed.valid[i, y, x] == targets.valid[k, y, x]


def test_a_box_is_drawn_with_probability_p():
    torch.manual_seed(0)
    drawn = [bool(views.cutmix_box(16, 16, 0.5, (0.02, 0.4), (0.3, 1 / 0.3)).any()) for _ in range(400)]
    assert 0.4 < sum(drawn) / len(drawn) < 0.6
    assert not views.cutmix_box(16, 16, 0.0, (0.02, 0.4), (0.3, 1 / 0.3)).any()


def test_strong_views_are_torchvision_photometric_and_keep_the_geometry():
    torch.manual_seed(0)
    strong = views.StrongView((0.5, 0.5, 0.5, 0.25), 1.0, 0.0, 0.0, (0.1, 2.0))
    images = torch.rand(2, 3, 8, 8) * 255 - torch.tensor(views.MEAN_RGB).view(1, 3, 1, 1)
    out = strong(images)
    assert out.shape == images.shape and not torch.allclose(out, images)
    gray = views.StrongView((0, 0, 0, 0), 0.0, 1.0, 0.0, (0.1, 2.0))(images)
    raw = gray + torch.tensor(views.MEAN_RGB).view(1, 3, 1, 1)
    assert torch.allclose(raw[:, 0], raw[:, 1], atol=1e-3) and torch.allclose(raw[:, 1], raw[:, 2], atol=1e-3)


def _pil_blurred(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Their blur: PIL's GaussianBlur(radius=sigma) on a (3, H, W) uint8 image."""
    from PIL import Image, ImageFilter

    out = Image.fromarray(image.permute(1, 2, 0).numpy()).filter(ImageFilter.GaussianBlur(radius=sigma))
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1).float()


@pytest.mark.parametrize("sigma", [0.1, 0.5, 1.0, 1.5, 2.0])
def test_the_blur_is_pils_at_the_borders_too(sigma):
    """Noise, the hardest case: within 3 of 255 of PIL everywhere (PIL rounds to 8 bits after each of its six box
    passes). torchvision's GaussianBlur, which reflects at the borders, is far off there."""
    from torchvision.transforms import v2

    image = torch.randint(0, 256, (3, 18, 22), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    pil = _pil_blurred(image, sigma)
    ours = views.pil_gaussian_blur(image.float() / 255, sigma) * 255
    assert float((ours - pil).abs().max()) <= 3
    border = torch.ones(18, 22, dtype=torch.bool)
    border[3:-3, 3:-3] = False
    reflected = v2.functional.gaussian_blur(image.float() / 255, [13, 13], [sigma, sigma]) * 255
    if sigma >= 0.5:
        assert float((reflected - pil).abs()[:, border].max()) > 15


def test_the_blur_draws_as_torchvisions_did():
    """One uniform per blurred image: a run draws the same numbers as with v2.GaussianBlur (resumes stay exact)."""
    from torchvision.transforms import v2

    images = torch.rand(3, 3, 10, 12) * 255 - torch.tensor(views.MEAN_RGB).view(1, 3, 1, 1)
    old = v2.Compose([v2.RandomApply([v2.ColorJitter(0.5, 0.5, 0.5, 0.25)], p=0.8), v2.RandomGrayscale(p=0.2),
                      v2.RandomApply([v2.GaussianBlur(13, sigma=(0.1, 2.0))], p=0.5)])
    torch.manual_seed(4)
    for x in images:
        old(x / 255)
    after_old = torch.get_rng_state()
    torch.manual_seed(4)
    views.StrongView((0.5, 0.5, 0.5, 0.25), 0.8, 0.2, 0.5, (0.1, 2.0))(images)
    assert torch.equal(torch.get_rng_state(), after_old)


class Toy(nn.Module):
    """A trunk and a head of 1x1 convolutions: ``segment`` as the trainer's, with a fixed Dropout2d mask."""

    def __init__(self, drop_mask: torch.Tensor) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.trunk, self.head = nn.Conv2d(3, 6, 1), nn.Conv2d(6, C, 1)
        self.drop_mask = drop_mask  # (rows, 6, 1, 1) of 0 / 2 (kept, scaled by 1 / (1 - 0.5))

    def forward(self, x, fp=False):  # their model(x) and model(x, True)
        feat = self.trunk(x)
        if not fp:
            return self.head(feat)
        out = self.head(torch.cat([feat, feat * self.drop_mask[: len(feat)]]))
        return out.chunk(2)

    def segment(self, *images, perturb=None):  # ours
        outs = [None if x is None else SegOutput(self.head(self.trunk(x)), None) for x in images]
        if perturb is not None:
            i, _ = perturb
            offset = images[0].shape[0] if i == 1 else 0
            feat = self.trunk(images[i])
            outs.append(SegOutput(self.head(feat * self.drop_mask[offset: offset + len(feat)]), None))
        return outs


def their_iteration(model, img_x, mask_x, img_u_w, img_u_s1, img_u_s2, ignore_mask, box1, box2,
                    img_u_w_mix, img_u_s1_mix, img_u_s2_mix, ignore_mask_mix, thresh):
    """A replica, written from reading it, of UniMatch's unimatch.py:135-188 for one iteration."""
    img_u_s1, img_u_s2 = img_u_s1.clone(), img_u_s2.clone()  # theirs edit the loader's tensors in place
    with torch.no_grad():
        model.eval()
        pred_mix = model(img_u_w_mix).detach()
        conf_mix, label_mix = pred_mix.softmax(1).max(1)[0], pred_mix.argmax(1)
    for img, mix, box in ((img_u_s1, img_u_s1_mix, box1), (img_u_s2, img_u_s2_mix, box2)):
        inside = box.unsqueeze(1).expand(img.shape) == 1
        img[inside] = mix[inside]
    model.train()
    nl, nu = img_x.shape[0], img_u_w.shape[0]
    preds, preds_fp = model(torch.cat((img_x, img_u_w)), True)
    pred_x, pred_u_w = preds.split([nl, nu])
    pred_fp = preds_fp[nl:]
    pred_s1, pred_s2 = model(torch.cat((img_u_s1, img_u_s2))).chunk(2)
    pred_u_w = pred_u_w.detach()
    conf, label = pred_u_w.softmax(1).max(1)[0], pred_u_w.argmax(1)
    terms = {"x": nn.CrossEntropyLoss(ignore_index=255)(pred_x, mask_x)}
    ce = nn.CrossEntropyLoss(reduction="none")
    for name, pred, box in (("s1", pred_s1, box1), ("s2", pred_s2, box2)):
        lab, cf, ign = label.clone(), conf.clone(), ignore_mask.clone()
        lab[box == 1], cf[box == 1], ign[box == 1] = label_mix[box == 1], conf_mix[box == 1], ignore_mask_mix[box == 1]
        loss = ce(pred, lab) * ((cf >= thresh) & (ign != 255))
        terms[name] = loss.sum() / (ign != 255).sum().item()
    loss = ce(pred_fp, label) * ((conf >= thresh) & (ignore_mask != 255))
    terms["fp"] = loss.sum() / (ignore_mask != 255).sum().item()
    total = (terms["x"] + terms["s1"] * 0.25 + terms["s2"] * 0.25 + terms["fp"] * 0.5) / 2.0
    return terms, total


def test_one_iteration_matches_a_replica_of_their_statements(monkeypatch):
    g = torch.Generator().manual_seed(1)
    n, h, w = 3, 6, 7
    img_x, img_u_w = torch.randn(n, 3, h, w, generator=g), torch.randn(n, 3, h, w, generator=g)
    mask_x = torch.randint(0, C, (n, h, w), generator=g)
    mask_x[:, 0] = 255
    s1, s2 = img_u_w * 0.7 + 0.1, img_u_w.flip(1) * 1.3  # two fixed "strong" views, pixel-aligned
    box1 = torch.zeros(n, h, w, dtype=torch.bool)
    box1[0, 1:4, 2:6], box1[2, 0:3, 0:2] = True, True
    box2 = torch.zeros(n, h, w, dtype=torch.bool)
    box2[1, 2:6, 1:5] = True
    drop = (torch.rand(2 * n, 6, 1, 1, generator=g) > 0.5).float() * 2
    model = Toy(drop)
    settings = tiny_config(objective="unimatch").settings
    thresh = 0.4  # the toy's confidences spread around it, so both sides of the threshold occur
    settings = type(settings)(unimatch=replace(settings.unimatch, threshold=thresh), latent=None)
    obj = um.UniMatchObjective(settings, C, n, 10)
    strong, boxes = iter([s1, s2]), iter([box1, box2])
    monkeypatch.setattr(obj, "strong", lambda x: next(strong))
    monkeypatch.setattr(um, "cutmix_boxes", lambda *a, **k: next(boxes))
    ours = obj.generator(model.segment, None, Batch(img_x, mask_x, img_u_w), step=0)
    grads = torch.autograd.grad(ours.total, list(model.parameters()))

    no_pad = torch.zeros(n, h, w, dtype=torch.long)  # our unlabeled stream has no padding (docs/decisions.md)
    roll = views.mix_source  # the mix batch: the same batch, shifted by one (their issue #34)
    terms, total = their_iteration(model, img_x, mask_x, img_u_w, s1, s2, no_pad, box1, box2, roll(img_u_w),
                                   roll(s1), roll(s2), roll(no_pad), thresh)
    theirs = torch.autograd.grad(total, list(model.parameters()))
    for k in ("x", "s1", "s2", "fp"):
        assert float(ours.parts[k].detach()) == pytest.approx(float(terms[k].detach()), rel=1e-5, abs=1e-7), k
    assert float(ours.parts["s1"].detach()) > 0 and float(ours.parts["fp"].detach()) > 0
    assert float(ours.total.detach()) == pytest.approx(float(total.detach()), rel=1e-5)
    for a, b in zip(grads, theirs, strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_the_weak_view_is_detached():
    g = torch.Generator().manual_seed(0)
    n, h, w = 2, 5, 5
    weak_logits = (torch.randn(n, C, h, w, generator=g) * 4).requires_grad_()
    other = [torch.randn(k, C, h, w, generator=g).requires_grad_() for k in (n, 2 * n, n)]

    def segment(*images, perturb=None):
        return [SegOutput(other[0], None), SegOutput(weak_logits, None), SegOutput(other[1], None),
                SegOutput(other[2], None)]

    settings = tiny_config(objective="unimatch").settings
    settings = type(settings)(unimatch=replace(settings.unimatch, threshold=0.3), latent=None)
    obj = um.UniMatchObjective(settings, C, n, 10)
    batch = Batch(torch.randn(n, 3, h, w), torch.randint(0, C, (n, h, w)), torch.randn(n, 3, h, w))
    parts = obj.generator(segment, None, batch, step=0).parts
    unlabeled = parts["s1"] + parts["s2"] + parts["fp"]
    assert float(unlabeled.detach()) > 0
    grad_weak, grad_strong = torch.autograd.grad(unlabeled, [weak_logits, other[1]], allow_unused=True)
    assert grad_weak is None and grad_strong is not None and grad_strong.abs().sum() > 0


@pytest.mark.parametrize("latent", [False, True])
def test_one_training_step_moves_the_network(latent, one_thread):  # noqa: F811
    cfg = tiny_config(objective="unimatch", unimatch={"latent_classes": latent, "threshold": 0.0})
    nets, batch = step_and_batch(cfg)
    assert nets.discriminator is None and (nets.model.latent_head is not None) == latent
    sgd, adam = make_optimizers(cfg, nets.model, None)
    before = [p.detach().clone() for p in nets.model.parameters()]
    torch.manual_seed(0)
    parts = one_update(nets, batch, 0, sgd, adam)
    assert {"x", "s1", "s2", "fp"} <= set(parts) and ({"latent", "cons"} <= set(parts)) == latent
    assert all(torch.isfinite(v) for v in parts.values())
    moved = [not torch.equal(a, b) for a, b in zip(before, nets.model.parameters(), strict=True)]
    named = [n for n, _ in nets.model.named_parameters()]
    assert any(m for n, m in zip(named, moved, strict=True) if n.startswith("backbone."))
    assert any(m for n, m in zip(named, moved, strict=True) if n.startswith("semantic_head."))


def test_the_feature_perturbation_trains_the_trunk(one_thread):  # noqa: F811
    cfg = tiny_config(objective="unimatch", unimatch={"threshold": 0.0})
    nets, batch = step_and_batch(cfg)
    torch.manual_seed(0)
    fp = nets.losses(batch, step=0).parts["fp"]
    trunk = [p for p in nets.model.backbone.parameters() if p.requires_grad]
    grads = torch.autograd.grad(fp, trunk, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("latent, terms", [(False, {"x", "s1", "s2", "fp"}),
                                           (True, {"x", "s1", "s2", "fp", "latent", "cons"})])
def test_the_trainer_runs_unimatch_and_logs_its_terms(tmp_path, latent, terms):
    from latentseg.train.trainer import train
    from tests.helpers import tiny_data

    data = tiny_data(tmp_path / "data", num_train=16)
    logged = []
    cfg = tiny_config(objective="unimatch", optim={"iterations": 2}, unimatch={"latent_classes": latent})
    summary = train(cfg, tmp_path / "run.pt", data, log=lambda m, s: logged.append(m))
    assert summary.steps_run == 2
    assert set(logged[-1]) == terms | {"total", "lr"}
    assert all(torch.isfinite(torch.tensor(v)) for v in logged[-1].values())


def test_channel_dropout_drops_whole_channels_from_the_cpu_generator():
    from latentseg.models.deeplab import channel_dropout

    x = torch.ones(4, 64, 3, 3)
    torch.manual_seed(0)
    y = channel_dropout(x, 0.5)
    assert set(y.unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(y.amin((2, 3)), y.amax((2, 3)))  # a channel is kept or dropped as a whole
    assert 0.3 < float((y[:, :, 0, 0] > 0).float().mean()) < 0.7
    torch.manual_seed(0)
    assert torch.equal(channel_dropout(x, 0.5), y)  # the same seed, the same masks (resume draws them again)
    assert not channel_dropout(x, 1.0).any()


def test_strong_views_stay_float32_under_bf16_autocast():
    strong = views.StrongView((0.5, 0.5, 0.5, 0.25), 1.0, 0.2, 1.0, (0.1, 2.0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert strong(torch.randn(2, 3, 16, 16) * 50).dtype == torch.float32


def test_a_resumed_unimatch_run_ends_with_the_same_weights(tmp_path):
    """Its views, boxes and dropout masks come from torch's CPU generator, whose state a checkpoint keeps."""
    from latentseg.train.checkpoint import load_trained
    from latentseg.train.trainer import train
    from tests.helpers import tiny_data

    class Killed(Exception):
        pass

    def die(metrics, step):
        if step == 3:  # the checkpoint of step 2 is on disk
            raise Killed

    data = tiny_data(tmp_path / "data", num_train=8)
    cfg = tiny_config(objective="unimatch", unimatch={"latent_classes": True, "threshold": 0.0},
                      optim={"iterations": 4}, runtime={"log_every": 1, "checkpoint_every": 2})
    train(cfg, tmp_path / "straight.pt", data)
    with pytest.raises(Killed):
        train(cfg, tmp_path / "killed.pt", data, log=die)
    assert train(cfg, tmp_path / "killed.pt", data).resumed_from == 2
    straight, resumed = (load_trained(tmp_path / f"{n}.pt")[0].state_dict() for n in ("straight", "killed"))
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
