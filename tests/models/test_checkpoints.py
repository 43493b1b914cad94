import pytest
import torch
import torch.nn.functional as F

from latentseg.data.dataset import MEAN_RGB
from latentseg.models.checkpoints import TORCHVISION_MEAN, TORCHVISION_STD, load_initialisation
from latentseg.models.deeplab import DeepLabV2
from tests.layouts import hung_coco_state, torchvision_resnet_state


def test_coco_layout_loads_strictly_and_fills_the_semantic_head():
    model = DeepLabV2(21, 20, backbone="tiny")
    state = hung_coco_state(model)
    fresh = load_initialisation(model, state, "deeplab_coco")
    assert torch.equal(model.backbone.layer1[0].conv1.weight, state["Scale.layer1.0.conv1.weight"])
    assert torch.equal(model.semantic_head.conv2d_list[2].bias, state["Scale.layer5.conv2d_list.2.bias"])
    assert all(k.startswith("latent_head.") for k in fresh)


def test_coco_head_of_another_class_count_is_dropped():
    model = DeepLabV2(19, None, backbone="tiny")
    before = model.semantic_head.conv2d_list[0].weight.clone()
    fresh = load_initialisation(model, hung_coco_state(model, classes=21), "deeplab_coco")
    assert torch.equal(before, model.semantic_head.conv2d_list[0].weight)
    assert "semantic_head.conv2d_list.0.weight" in fresh


def test_missing_and_misnamed_tensors_are_named_in_the_error():
    model = DeepLabV2(21, None, backbone="tiny")
    state = hung_coco_state(model)
    del state["Scale.layer2.0.bn2.running_var"]
    state["Scale.layer2.0.bn2.runing_var"] = torch.ones(16)
    with pytest.raises(KeyError) as err:
        load_initialisation(model, state, "deeplab_coco")
    assert "missing tensor backbone.layer2.0.bn2.running_var" in str(err.value)
    assert "unexpected tensor backbone.layer2.0.bn2.runing_var" in str(err.value)


def test_torchvision_resnet_layout_drops_fc():
    model = DeepLabV2(21, None, backbone="tiny")
    state = torchvision_resnet_state(model)
    load_initialisation(model, state, "torchvision_resnet")
    assert torch.equal(model.backbone.layer2[0].conv2.weight, state["layer2.0.conv2.weight"])


@pytest.mark.slow
def test_torchvision_resnet101_state_dict_loads_into_the_full_backbone():
    torchvision = pytest.importorskip("torchvision")
    state = torchvision.models.resnet101(weights=None).state_dict()
    model = DeepLabV2(21, 20, backbone="resnet101")
    load_initialisation(model, state, "torchvision_resnet")
    assert torch.equal(model.backbone.layer3[5].conv2.weight, state["layer3.5.conv2.weight"])


def test_torchvision_input_convention_is_folded_into_conv1():
    """Folded, the stem computes from our input (pixels - Caffe mean) what torchvision's computes from its own
    ((pixels / 255 - mean) / std), with batch-norm statistics frozen; only the zero-padded border differs."""
    model = DeepLabV2(21, None, backbone="tiny")
    state = torchvision_resnet_state(model)
    load_initialisation(model, state, "torchvision_resnet")
    pixels = torch.rand(2, 3, 24, 24) * 255
    ours = pixels - torch.tensor(MEAN_RGB).view(1, 3, 1, 1)
    theirs = (pixels / 255 - torch.tensor(TORCHVISION_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        TORCHVISION_STD).view(1, 3, 1, 1)
    bn = state["bn1.running_mean"], state["bn1.running_var"], state["bn1.weight"], state["bn1.bias"]
    expected = F.batch_norm(F.conv2d(theirs, state["conv1.weight"], stride=2, padding=3), *bn[:2], *bn[2:])
    model.eval()
    got = model.backbone.bn1(model.backbone.conv1(ours))
    inner = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from the 7x7 kernel's padding
    assert torch.allclose(got[inner], expected[inner], atol=1e-3, rtol=1e-4)
