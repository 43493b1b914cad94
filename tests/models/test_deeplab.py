import pytest
import torch

from latentseg.losses import consistency_loss, latent_loss
from latentseg.models.aspp import ASPP
from latentseg.models.deeplab import DeepLabV2, upsample
from latentseg.models.discriminator import Discriminator


@pytest.mark.slow
def test_full_size_model_forward_backward_on_one_321_image():
    model = DeepLabV2(21, 20, backbone="resnet101", aspp_branches=4, freeze_bn_stats=True)
    x = torch.randn(1, 3, 321, 321)
    out = model(x)
    assert out.semantic.shape == (1, 21, 41, 41)  # output stride 8, as DeepLab-v2's 321 -> 41
    assert out.latent.shape == (1, 20, 41, 41)
    (upsample(out.semantic, (321, 321)).mean() + out.latent.mean()).backward()
    assert model.backbone.conv1.weight.grad is not None
    names = set(model.state_dict())
    for key in ("backbone.conv1.weight", "backbone.bn1.running_mean", "backbone.layer1.0.downsample.0.weight",
                "backbone.layer3.22.conv3.weight", "backbone.layer4.0.downsample.1.weight",
                "semantic_head.conv2d_list.3.bias", "latent_head.conv2d_list.0.weight"):
        assert key in names
    assert model.backbone.layer4[0].conv2.dilation == (4, 4)
    assert model.backbone.layer3[0].conv2.dilation == (2, 2)
    assert model.backbone.layer2[0].conv1.stride == (2, 2)  # caffe style: stride on the 1x1
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".bn" in n or "downsample.1" in n)


def test_batchnorm_statistics_frozen_or_updated_as_configured():
    frozen = DeepLabV2(5, 3, backbone="tiny", aspp_branches=4, freeze_bn_stats=True).train()
    before = frozen.backbone.bn1.running_mean.clone()
    frozen(torch.randn(2, 3, 32, 32))
    assert torch.equal(before, frozen.backbone.bn1.running_mean)
    live = DeepLabV2(5, 3, backbone="tiny", aspp_branches=4, freeze_bn_stats=False).train()
    live(torch.randn(2, 3, 32, 32))
    assert not torch.equal(before, live.backbone.bn1.running_mean)


@pytest.mark.parametrize("branches", [1, 2, 4])
def test_aspp_sums_the_configured_branches(branches):
    torch.manual_seed(0)
    aspp = ASPP(8, 3, (6, 12, 18, 24), summed_branches=branches)
    for size in (10, 30):  # at 10x10 the taps of dilations 12-24 fall in the padding and are skipped
        x = torch.randn(1, 8, size, size)
        expected = sum(conv(x) for conv in aspp.conv2d_list[:branches])
        assert torch.allclose(aspp(x), expected, atol=1e-6)
    assert len(aspp.conv2d_list) == 4  # all four exist whatever is summed (strict checkpoint loading)


def test_taps_that_see_only_padding_are_skipped_exactly_with_their_gradients():
    torch.manual_seed(0)
    aspp = ASPP(8, 3, (6, 12, 18, 24), summed_branches=4).double()
    for conv in aspp.conv2d_list:
        torch.nn.init.normal_(conv.weight)
    for size in [(6, 6), (7, 12), (13, 3)]:
        x = torch.randn(2, 8, *size, dtype=torch.float64, requires_grad=True)
        full = sum(conv(x) for conv in aspp.conv2d_list)
        grad = torch.randn_like(full)
        want = torch.autograd.grad(full, [x, *aspp.parameters()], grad)
        got = torch.autograd.grad(aspp(x), [x, *aspp.parameters()], grad)
        for a, b in zip(want, got, strict=True):
            assert torch.allclose(a, b, atol=1e-10)


def test_discriminator_shape_and_layers():
    d = Discriminator(21, 64)
    out = d(torch.rand(2, 21, 64, 48))
    assert out.shape == (2, 1, 64, 48)
    assert [c.out_channels for c in d.convs] + [d.classifier.out_channels] == [64, 128, 256, 512, 1]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) for c in [*d.convs, d.classifier])


def _grads(model):
    return {part: any(p.grad is not None and p.grad.abs().sum() > 0 for p in getattr(model, part).parameters())
            for part in ("backbone", "semantic_head", "latent_head")}


def test_latent_loss_reaches_the_latent_branch_not_the_semantic_head():
    torch.manual_seed(0)
    model = DeepLabV2(5, 3, backbone="tiny", aspp_branches=4, freeze_bn_stats=True)
    x, target = torch.randn(2, 3, 32, 32), torch.randint(0, 5, (2, 32, 32))
    out = model(x)
    latent_loss(upsample(out.latent, (32, 32)).softmax(1), target, 5).backward()
    assert _grads(model) == {"backbone": True, "semantic_head": False, "latent_head": True}


def test_consistency_loss_reaches_the_semantic_branch_not_the_latent_head():
    torch.manual_seed(0)
    model = DeepLabV2(5, 3, backbone="tiny", aspp_branches=4, freeze_bn_stats=True)
    out = model(torch.randn(2, 3, 32, 32))
    p = torch.rand(5, 3)
    consistency_loss(out.latent.softmax(1), out.semantic.softmax(1), p / p.sum(1, keepdim=True)).backward()
    assert _grads(model) == {"backbone": True, "semantic_head": True, "latent_head": False}
