"""Published checkpoint layouts map strictly onto our network (weights/layouts.py)."""

import pytest
import torch
import torch.nn.functional as F

from latentseg.data.augment import MEAN_RGB
from latentseg.models.deeplab import DeepLabV2
from latentseg.weights.layouts import TORCHVISION_MEAN, TORCHVISION_STD, load_published
from tests.layouts import HungDeepLab, hung_coco_state, randomised, torchvision_resnet_state


def ours(classes: int = 21, latent: int | None = 20, backbone: str = "tiny", branches: int = 2) -> DeepLabV2:
    return DeepLabV2(classes, latent, backbone=backbone, aspp_branches=branches, freeze_bn_stats=True)


@pytest.mark.parametrize("prefixed", [False, True], ids=["hung-released", "scale-prefixed"])
def test_hung_layout_loads_strictly_and_gives_his_models_logits(prefixed):
    """A state dict in Hung et al.'s own key layout, from a model with his module names, loads strictly; with
    ``aspp_branches: 2`` our network computes his model's logits (his ASPP sums two branches)."""
    replica = randomised(HungDeepLab(21), seed=1).eval()
    state = {("Scale." if prefixed else "") + k: v for k, v in replica.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    model = ours(branches=2).eval()
    fresh = load_published(model, state, "deeplab_coco")
    assert all(k.startswith("latent_head.") for k in fresh)  # everything else came from the file
    x = torch.randn(2, 3, 41, 57) * 50
    with torch.no_grad():
        theirs, mine = replica(x), model(x, with_latent=False).semantic
    assert theirs.shape == mine.shape == (2, 21, 6, 8)
    assert torch.allclose(mine, theirs, rtol=1e-4, atol=1e-4 * theirs.abs().max())
    four = ours(branches=4).eval()
    load_published(four, state, "deeplab_coco")
    with torch.no_grad():
        assert not torch.allclose(four(x, with_latent=False).semantic, theirs, atol=1e-3)  # DeepLab-v2's 4 differ


def test_coco_head_of_another_class_count_is_not_loaded():
    model = ours(19, None)
    before = model.semantic_head.conv2d_list[0].weight.clone()
    fresh = load_published(model, hung_coco_state(classes=21), "deeplab_coco")
    assert torch.equal(before, model.semantic_head.conv2d_list[0].weight)
    assert "semantic_head.conv2d_list.0.weight" in fresh


@pytest.mark.parametrize("prefixed", [False, True])
def test_missing_and_misnamed_tensors_are_named_in_the_error(prefixed):
    state = hung_coco_state(prefixed=prefixed)
    p = "Scale." if prefixed else ""
    del state[f"{p}layer2.0.bn2.running_var"]
    state[f"{p}layer2.0.bn2.runing_var"] = torch.ones(16)
    with pytest.raises(KeyError) as err:
        load_published(ours(), state, "deeplab_coco")
    assert "missing tensor backbone.layer2.0.bn2.running_var" in str(err.value)
    assert "unexpected tensor backbone.layer2.0.bn2.runing_var" in str(err.value)


def test_a_file_mixing_both_layouts_is_refused_naming_keys():
    state = hung_coco_state(prefixed=False)
    state["Scale.conv1.weight"] = state.pop("conv1.weight")
    with pytest.raises(KeyError, match="mixed"):
        load_published(ours(), state, "deeplab_coco")


def test_torchvision_resnet_layout_drops_fc():
    model = ours(latent=None)
    state = torchvision_resnet_state(model)
    load_published(model, state, "torchvision_resnet")
    assert torch.equal(model.backbone.layer2[0].conv2.weight, state["layer2.0.conv2.weight"])


@pytest.mark.slow
def test_full_size_layouts_load_into_the_resnet101_backbone():
    torchvision = pytest.importorskip("torchvision")
    model = ours(backbone="resnet101")
    tv = torchvision.models.resnet101(weights=None).state_dict()
    load_published(model, tv, "torchvision_resnet")
    assert torch.equal(model.backbone.layer3[5].conv2.weight, tv["layer3.5.conv2.weight"])
    hung = hung_coco_state(full=True, prefixed=False)
    trunk = [k for k in model.backbone.state_dict() if not k.endswith("num_batches_tracked")]
    assert len(hung) == len(trunk) + 8  # every trunk tensor, and layer5's four weights and biases
    load_published(model, hung, "deeplab_coco")
    assert torch.equal(model.backbone.layer3[22].conv3.weight, hung["layer3.22.conv3.weight"])


def test_torchvision_input_convention_is_folded_into_conv1():
    """Folded, the stem computes from our input (pixels - Caffe mean) what torchvision's computes from its own
    ((pixels / 255 - mean) / std), with batch-norm statistics frozen; only the zero-padded border differs."""
    model = ours(latent=None)
    state = torchvision_resnet_state(model)
    load_published(model, state, "torchvision_resnet")
    pixels = torch.rand(2, 3, 24, 24) * 255
    mine = pixels - torch.tensor(MEAN_RGB).view(1, 3, 1, 1)
    theirs = (pixels / 255 - torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        TORCHVISION_STD).view(1, 3, 1, 1)
    bn = state["bn1.running_mean"], state["bn1.running_var"], state["bn1.weight"], state["bn1.bias"]
    expected = F.batch_norm(F.conv2d(theirs, state["conv1.weight"], stride=2, padding=3), *bn[:2], *bn[2:])
    model.eval()
    got = model.backbone.bn1(model.backbone.conv1(mine))
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from the 7x7 kernel's padding
    assert torch.allclose(got[inner], expected[inner], atol=1e-3, rtol=1e-4)
