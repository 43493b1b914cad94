import torch

from latentseg.classifier import (
    ImageClassifier,
    classifier_identity,
    ema_update,
    load_classifier,
    presence,
    save_classifier,
    train_classifier,
)
from latentseg.config import ClassifierConfig, from_dict
from latentseg.experiments import deep_merge
from tests.helpers import PARAMS, data_config, tiny_data


def test_presence_labels():
    mask = torch.tensor([[[0, 2], [255, 2]], [[1, 1], [1, 255]]])
    assert presence(mask, 3).tolist() == [[1, 0, 1], [0, 1, 0]]


def test_ema_update_moves_teacher_towards_student():
    s, t = ImageClassifier(3, "tiny"), ImageClassifier(3, "tiny")
    with torch.no_grad():
        for p in t.parameters():
            p.zero_()
        for p in s.parameters():
            p.fill_(1.0)
    ema_update(t, s, 0.9)
    assert torch.allclose(t.fc.weight, torch.full_like(t.fc.weight, 0.1))


def test_train_save_and_load_a_classifier(tmp_path):
    data = tiny_data(tmp_path / "d", num_train=12)
    cfg = from_dict(ClassifierConfig, deep_merge(PARAMS["classifier"], {
        "backbone": "tiny", "iterations": 3, "batch_size": 2, "input_size": 32}), "classifier.")
    model = train_classifier(cfg, data_config(), data, torch.device("cpu"), 0)
    identity = classifier_identity(cfg, data_config(), data, 0, None)
    save_classifier(model, tmp_path / "c.pt", identity)
    loaded = load_classifier(tmp_path / "c.pt").eval()
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(loaded(x), model.eval()(x))
    # reused only by the same training: another seed (or split, or settings) gets None
    assert load_classifier(tmp_path / "c.pt", identity) is not None
    assert load_classifier(tmp_path / "c.pt", classifier_identity(cfg, data_config(), data, 1, None)) is None
    assert load_classifier(tmp_path / "missing.pt", identity) is None
