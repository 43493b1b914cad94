import pytest
import torch

from latentseg.models.checkpoints import load_initialisation
from latentseg.models.deeplab import DeepLabV2


def _published_coco_layout(model: DeepLabV2, classes: int = 21) -> dict:
    """A state dict laid out like Hung et al.'s resnet101COCO file: 'Scale.' prefix, 'layer5' head."""
    state = {}
    for k, v in model.backbone.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            state["Scale." + k] = torch.randn_like(v) if v.is_floating_point() else v
    for i, d in enumerate((6, 12, 18, 24)):
        del d
        state[f"Scale.layer5.conv2d_list.{i}.weight"] = torch.randn(classes, model.backbone.out_channels, 3, 3)
        state[f"Scale.layer5.conv2d_list.{i}.bias"] = torch.randn(classes)
    return state


def test_coco_layout_loads_strictly_and_fills_the_semantic_head():
    model = DeepLabV2(21, 20, backbone="tiny")
    state = _published_coco_layout(model)
    fresh = load_initialisation(model, state, "deeplab_coco")
    assert torch.equal(model.backbone.layer1[0].conv1.weight, state["Scale.layer1.0.conv1.weight"])
    assert torch.equal(model.semantic_head.conv2d_list[2].bias, state["Scale.layer5.conv2d_list.2.bias"])
    assert all(k.startswith("latent_head.") for k in fresh)


def test_coco_head_of_another_class_count_is_dropped():
    model = DeepLabV2(19, None, backbone="tiny")
    before = model.semantic_head.conv2d_list[0].weight.clone()
    fresh = load_initialisation(model, _published_coco_layout(model, classes=21), "deeplab_coco")
    assert torch.equal(before, model.semantic_head.conv2d_list[0].weight)
    assert "semantic_head.conv2d_list.0.weight" in fresh


def test_missing_and_misnamed_tensors_are_named_in_the_error():
    model = DeepLabV2(21, None, backbone="tiny")
    state = _published_coco_layout(model)
    del state["Scale.layer2.0.bn2.running_var"]
    state["Scale.layer2.0.bn2.runing_var"] = torch.ones(16)
    with pytest.raises(KeyError) as err:
        load_initialisation(model, state, "deeplab_coco")
    assert "missing tensor backbone.layer2.0.bn2.running_var" in str(err.value)
    assert "unexpected tensor backbone.layer2.0.bn2.runing_var" in str(err.value)


def test_torchvision_resnet_layout_drops_fc():
    model = DeepLabV2(21, None, backbone="tiny")
    state = {k: v for k, v in model.backbone.state_dict().items()}
    state["fc.weight"] = torch.randn(1000, model.backbone.out_channels)
    state["fc.bias"] = torch.randn(1000)
    load_initialisation(model, state, "torchvision_resnet")


@pytest.mark.slow
def test_torchvision_resnet101_state_dict_loads_into_the_full_backbone():
    torchvision = pytest.importorskip("torchvision")
    state = torchvision.models.resnet101(weights=None).state_dict()
    model = DeepLabV2(21, 20, backbone="resnet101")
    load_initialisation(model, state, "torchvision_resnet")
    assert torch.equal(model.backbone.layer3[5].conv2.weight, state["layer3.5.conv2.weight"])
