"""The U-Net: per-pixel embeddings (workflow 1, :class:`EmbedNet`) or class logits (workflow 2's
stage-2 network, :class:`SegNet`), and the embedding network's weights files.

Weights files are plain ``torch.save`` dicts of tensors and primitives, loaded with
``torch.load(weights_only=True)``::

    {"format": "napari-fewcell/embed", "version": 1, "config": {...}, "card": {...},
     "state_dict": {...}}
"""
from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..core import modelfile
from ..core.files import file_sha256
from ..core.geometry import pad_to_multiple

DEFAULT_WEIGHTS = "fewcell_embed_v1.pt"


@dataclasses.dataclass
class NetConfig:
    in_channels: int = 3
    base: int = 16
    depth: int = 3
    embed_dim: int = 32
    tau: float = 0.1  # temperature the network was trained with (default at inference)


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class EmbedNet(nn.Module):
    """U-Net giving an L2-normalised ``embed_dim`` vector for every pixel, at full resolution.

    Input height and width must be multiples of ``2**depth`` (see :attr:`multiple`).
    """

    def __init__(self, config: NetConfig | None = None):
        super().__init__()
        self.config = config = config or NetConfig()
        chans = [config.base * 2**i for i in range(config.depth + 1)]
        self.down = nn.ModuleList()
        cin = config.in_channels
        for c in chans:
            self.down.append(_block(cin, c))
            cin = c
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for c_hi, c_lo in zip(chans[::-1][:-1], chans[::-1][1:]):
            self.up.append(nn.ConvTranspose2d(c_hi, c_lo, 2, stride=2))
            self.fuse.append(_block(2 * c_lo, c_lo))
        self.head = nn.Conv2d(chans[0], config.embed_dim, 1)

    @property
    def multiple(self) -> int:
        return 2**self.config.depth

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """The U-Net's head output (before any normalisation) at full resolution."""
        return self.head(self.body(x))

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's maps at every level, full resolution first, the bottleneck last."""
        skips = []
        if x.dim() == 4 and x.device.type == "cpu":
            # oneDNN's convolutions run about 1.7× faster on channels-last (NHWC) maps on the CPU (inference; a
            # training step 1.1–1.2×), and the per-pixel normalisation about 10× (docs/benchmarks/); the same
            # numbers to float rounding. The outputs stay channels last: (D, h, w) → (h·w, D) is then a view.
            x = x.contiguous(memory_format=torch.channels_last)
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        return skips

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """The maps the 1×1 head reads (the input of the last layer), at full resolution."""
        skips = self.encode(x)
        x = skips[-1]
        for up, fuse, skip in zip(self.up, self.fuse, skips[-2::-1]):
            x = fuse(torch.cat([up(x), skip], dim=1))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.decode(x), dim=1)

    def any_size(self, x: torch.Tensor, fn=None, mode: str = "auto") -> torch.Tensor:
        """``fn(x)`` (default: the network itself; e.g. ``self.body``) for an input of any height and width:
        padded at the bottom and right to multiples of :attr:`multiple`, the output cropped back."""
        t, h, w = pad_to_multiple(x, self.multiple, mode)
        return (fn or self)(t)[..., :h, :w]

    def bottleneck(self, x: torch.Tensor) -> torch.Tensor:
        """The deepest encoder features (the U-Net's latent code), ``base·2**depth`` channels at 1/2**depth
        resolution; the same maps :meth:`body` computes before its first up-sampling."""
        return self.encode(x)[-1]


class SegNet(EmbedNet):
    """U-Net returning class logits (``config.embed_dim`` = number of classes) at full resolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(x)



def save_weights(model: EmbedNet, path: str | Path, card: dict | None = None) -> None:
    """Write a weights file atomically."""
    modelfile.save(path, modelfile.EMBED, {"config": dataclasses.asdict(model.config), "card": card or {},
                                 "state_dict": modelfile.state_dict(model)})


def default_weights_path() -> Path:
    return Path(str(resources.files("napari_fewcell") / "weights" / DEFAULT_WEIGHTS))


def load_model(path: str | Path | None = None, device: torch.device | str = "cpu") -> EmbedNet:
    """Load an :class:`EmbedNet` from a weights file (the shipped one by default).

    A missing, corrupt or foreign file raises :class:`FewcellError` with one sentence.
    """
    path = Path(path) if path else default_weights_path()
    model, payload = modelfile.load_network(path, modelfile.EMBED, lambda config: EmbedNet(NetConfig(**config)))
    model.card = payload.get("card", {})
    model.weights_path, model.weights_sha256 = str(path), file_sha256(path)  # provenance: which file made a result
    return model.to(device).eval()
