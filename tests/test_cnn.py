"""The multi-branch ResNet-18: shapes for every input combination, stems, and memorisation."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torchvision

from analysis_lib.models.cnn import (
    FEATURES_PER_BRANCH,
    MultiBranchResNet,
    resnet18_backbone,
    stem_for,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py

SIZES = {"image_r": 32, "image_g": 32, "colour_gr": 32, "vel_map": 16, "sigma_map": 16}
BASE = ("image_r", "image_g", "vel_map", "sigma_map")
COMBOS = [c for k in range(1, 5) for c in itertools.combinations(BASE, k)]
COMBOS.append(("colour_gr", "image_r", "vel_map", "sigma_map"))


@pytest.fixture(scope="module")
def _one_resnet18():
    return torchvision.models.resnet18(weights=None)


@pytest.fixture
def fast_resnet18(monkeypatch, _one_resnet18):
    """Copies of one initialised ResNet-18: the random init of 11M weights dominates the time."""
    monkeypatch.setattr(torchvision.models, "resnet18",
                        lambda weights=None: copy.deepcopy(_one_resnet18))


@pytest.mark.parametrize("names", COMBOS, ids=["+".join(c) for c in COMBOS])
def test_output_shape_for_every_input_combination(names, fast_resnet18):
    torch.manual_seed(0)
    n_out = 2 if len(names) % 2 else 1
    model = MultiBranchResNet({n: SIZES[n] for n in names}, n_out).eval()
    x = {n: torch.rand(3, 1, SIZES[n], SIZES[n]) for n in names}
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, n_out)
    assert torch.isfinite(out).all()
    assert model.head[0].in_features == FEATURES_PER_BRANCH * len(names)


def test_branch_order_does_not_depend_on_input_order():
    a = MultiBranchResNet({"vel_map": 16, "image_r": 32}, 1)
    b = MultiBranchResNet({"image_r": 32, "vel_map": 16}, 1)
    assert list(a.state_dict()) == list(b.state_dict())


def test_backbone_takes_one_channel_and_returns_512_features():
    net = resnet18_backbone(48, "imagenet")
    assert net.conv1.in_channels == 1 and net.conv1.stride == (2, 2)
    assert net(torch.rand(2, 1, 48, 48)).shape == (2, 512)


def test_small_stem_keeps_resolution_and_auto_switches_on_size():
    assert stem_for(48, "auto") == "small" and stem_for(300, "auto") == "imagenet"
    net = resnet18_backbone(48, "small")
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    feats = {}

    def keep_shape(module, inputs, output):
        feats["l4"] = output.shape

    net.layer4.register_forward_hook(keep_shape)
    net(torch.rand(2, 1, 48, 48))
    assert feats["l4"][-1] == 3  # 48 / 16, against 2 (48 / 32, rounded up) for ImageNet
    with pytest.raises(ValueError, match="cnn.stem"):
        stem_for(48, "tiny")


def test_hidden_head_and_bad_arguments():
    model = MultiBranchResNet({"image_r": 16}, 3, head_hidden=8)
    assert len(model.head) == 3
    assert model({"image_r": torch.rand(2, 1, 16, 16)}).shape == (2, 3)
    with pytest.raises(ValueError, match="at least one input"):
        MultiBranchResNet({}, 1)
    with pytest.raises(ValueError, match="n_outputs"):
        MultiBranchResNet({"image_r": 16}, 0)


@pytest.mark.slow
def test_model_overfits_32_samples():
    """Memorising 32 random targets shows gradients reach every layer and the head."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    model = MultiBranchResNet({"image_r": 16, "sigma_map": 16}, 1)
    x = {"image_r": torch.rand(32, 1, 16, 16, generator=g),
         "sigma_map": torch.rand(32, 1, 16, 16, generator=g)}
    y = torch.randn(32, 1, generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 20
