"""The paper's multi-branch ResNet-18: one backbone per input image or map, one shared head.

Each input (r image, g image or g-r colour map, mean-velocity map, dispersion map) has its own
`torchvision.models.resnet18(weights=None)` backbone, because the inputs differ in size and
meaning and the paper keeps them apart until the head. The backbone's first convolution takes the
branch's channels instead of three: one for an image; two, (value, valid), for the kinematic maps
and the colour map, whose masked pixels reach the network as their own channel
(cnn_data.branch_channels). Its classification layer is removed, leaving the 512 pooled
features; the features of all branches are concatenated and a fully connected head maps them to
one output per (standardised) target; a Gaussian-likelihood head (`likelihood='gaussian'`, see
cnn_prob.py) has two per target, the mean and the log-variance.

Stems. The torchvision stem (7x7 convolution with stride 2, then a stride-2 max-pool) reduces a
300-px image to 75 px before the first residual block, as on ImageNet. For small inputs (the
48-px kinematic maps, the 60-px images) that leaves only 2x2 pixels at the last block, so the
'small' stem (3x3 convolution with stride 1, the max-pool kept) is offered: feature maps twice as
fine per side (3x3 at the last block for a 48-px map) for about 3-4x the training cost on a
CPU. `stem='auto'` uses it for inputs under `SMALL_INPUT_PX` pixels. The paper does not say which
it used ("a modified ResNet-18"); the default is the unmodified stem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torchvision
from torch import nn

FEATURES_PER_BRANCH = 512  # ResNet-18's pooled feature width
SMALL_INPUT_PX = 100  # 'auto' stem: below this size the small stem is used
STEMS = ("imagenet", "small", "auto")


def stem_for(size: int, stem: str) -> str:
    """The stem actually used for an input of `size` pixels ('imagenet' or 'small')."""
    if stem not in STEMS:
        raise ValueError(f"cnn.stem must be one of {', '.join(STEMS)}, not '{stem}'")
    if stem == "auto":
        return "small" if size < SMALL_INPUT_PX else "imagenet"
    return stem


def resnet18_backbone(size: int, stem: str = "imagenet", in_channels: int = 1) -> nn.Module:
    """A randomly initialised ResNet-18 for one input of `in_channels`, returning 512 features."""
    net = torchvision.models.resnet18(weights=None)
    if stem_for(size, stem) == "small":
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    else:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.fc = nn.Identity()
    return net


class MultiBranchResNet(nn.Module):
    """One ResNet-18 per named input; concatenated features -> fully connected head.

    `input_sizes` maps each branch name to its image side in pixels (any order; the branch order
    is fixed by sorting, so a saved state dict does not depend on the order inputs were listed).
    `head_hidden` > 0 inserts one hidden layer (ReLU) in the head; 0 is the paper's single
    fully connected layer. `input_channels` maps branch names to their channel counts (1 for
    every branch not named).
    """

    def __init__(self, input_sizes: Mapping[str, int], n_outputs: int, stem: str = "imagenet",
                 head_hidden: int = 0, input_channels: Mapping[str, int] | None = None) -> None:
        super().__init__()
        if not input_sizes:
            raise ValueError("MultiBranchResNet needs at least one input")
        if n_outputs < 1:
            raise ValueError(f"n_outputs must be >= 1, not {n_outputs}")
        self.input_names: list[str] = sorted(input_sizes)
        self.input_sizes = {k: int(input_sizes[k]) for k in self.input_names}
        channels = dict(input_channels or {})
        self.input_channels = {k: int(channels.get(k, 1)) for k in self.input_names}
        self.branches = nn.ModuleDict({
            name: resnet18_backbone(self.input_sizes[name], stem, self.input_channels[name])
            for name in self.input_names})
        width = FEATURES_PER_BRANCH * len(self.input_names)
        if head_hidden > 0:
            self.head = nn.Sequential(nn.Linear(width, head_hidden), nn.ReLU(inplace=True),
                                      nn.Linear(head_hidden, n_outputs))
        else:
            self.head = nn.Sequential(nn.Linear(width, n_outputs))

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """inputs: name -> (batch, channels, N, N) tensor; returns (batch, n_outputs), float32.

        The head runs in float32 even under bf16 autocast: bf16 keeps ~3 significant digits,
        which would add ~0.005 dex of rounding to predictions whose scatter is ~0.04 dex.
        """
        feats = self.embed(inputs)
        with torch.autocast(feats.device.type, enabled=False):
            return self.head(feats)

    def embed(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The head's input: every branch's pooled features, concatenated, float32.

        (batch, 512 x branches). The conditional normalising flow (cnn_prob.py) uses it as a
        learned summary of the maps: the network's own compression of what predicts the masses.
        """
        feats = torch.cat([self.branches[name](inputs[name]) for name in self.input_names], 1)
        return feats.float()


LIKELIHOODS = ("mse", "gaussian")


def outputs_per_target(likelihood: str) -> int:
    """1 for the paper's MSE (a point estimate); 2 for a Gaussian head (mean, log-variance)."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"experiment likelihood must be one of {', '.join(LIKELIHOODS)}, "
                         f"not '{likelihood}'")
    return 2 if likelihood == "gaussian" else 1


def build_model(input_sizes: Mapping[str, int], targets: Sequence[str], cnn_cfg: Mapping,
                input_channels: Mapping[str, int] | None = None, likelihood: str = "mse"
                ) -> MultiBranchResNet:
    """The model for an experiment, from the profile's `cnn` section.

    Channels per branch default to what the data side feeds it (cnn_data.branch_channels: the
    maps and the colour map carry their mask as a second channel). `likelihood='gaussian'`
    doubles the outputs: the T means first, then the T log-variances (standardised units), all
    from the float32 head.
    """
    from analysis_lib.models.cnn_data import branch_channels

    if input_channels is None:
        input_channels = {name: branch_channels(name) for name in input_sizes}
    n_out = len(targets) * outputs_per_target(likelihood)
    return MultiBranchResNet(input_sizes, n_out, stem=cnn_cfg.get("stem", "imagenet"),
                             head_hidden=int(cnn_cfg.get("head_hidden", 0)),
                             input_channels=input_channels)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
