"""Mixed-scale dense (MSD) networks (Pelt & Sethian, PNAS 2018), written from the paper.

Every layer is a 3×3 convolution, dilated by ``(i mod max_dilation) + 1``, of *all* previous
maps (the input channels and every earlier layer's output), ``width`` maps wide, followed by
ReLU; a final 1×1 layer combines all maps into the output logits. All maps keep the input's
full resolution, which is what makes them good features for a per-pixel perceptron (paper 002).

Weights are stored as state dicts with a JSON-able card (``save_msd`` / ``load_msd``, read back
with ``torch.load(weights_only=True)``).
"""
from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core import modelfile

PREFIX = "msd_"  #: shipped networks are ``weights/msd_<name>.pt``


def shipped_dir() -> Path:
    return Path(str(resources.files("napari_fewcell") / "weights"))


def shipped_names() -> list[str]:
    """Names of the MSD networks that ship with the package (``weights/msd_<name>.pt``)."""
    return sorted(p.stem[len(PREFIX):] for p in shipped_dir().glob(f"{PREFIX}*.pt"))


def shipped_path(name: str) -> Path:
    return shipped_dir() / f"{PREFIX}{name}.pt"


@dataclasses.dataclass(frozen=True)
class MSDConfig:
    in_channels: int = 3
    depth: int = 50  #: layers
    width: int = 1  #: maps per layer
    max_dilation: int = 10  #: dilations cycle 1, 2, …, max_dilation
    out_channels: int = 1

    @property
    def n_maps(self) -> int:
        return self.depth * self.width

    def dilation(self, i: int) -> int:
        """Dilation of layer ``i``: 1, 2, …, max_dilation, 1, 2, …"""
        return (i % self.max_dilation) + 1

    @property
    def radius(self) -> int:
        """Receptive-field radius in pixels (the sum of all dilations)."""
        return sum(self.dilation(i) for i in range(self.depth))


def dilated_conv(conv: nn.Conv2d, z: torch.Tensor, d: int) -> torch.Tensor:
    """``conv(z)`` (3×3, dilation d, reflect padding) computed as one matrix product and nine shifts.

    A width-1 dilated convolution of many maps is slow in torch's CPU kernels; since padding is
    linear and per map, mixing the maps first (9·width mixes, a GEMM) and then padding and
    shifting the mixes gives the same result at matrix-product speed.
    """
    n, k, h, w = z.shape
    o = conv.out_channels
    weight = conv.weight.permute(0, 2, 3, 1).reshape(o * 9, k)
    # one 2D GEMM per image: torch's batched matmul with a broadcast weight is several times slower
    mix = torch.stack([torch.mm(weight, zi.reshape(k, h * w)) for zi in z])
    mix = F.pad(mix.view(n, o * 9, h, w), (d, d, d, d), mode="reflect").view(n, o, 9, h + 2 * d, w + 2 * d)
    out = mix[:, :, 0, :h, :w] + conv.bias.view(1, o, 1, 1)
    for t in range(1, 9):
        a, b = divmod(t, 3)
        out = out + mix[:, :, t, a * d : a * d + h, b * d : b * d + w]
    return out


def padded_conv(conv: nn.Conv2d, zp: torch.Tensor, d: int, pad: int) -> torch.Tensor:
    """``dilated_conv`` of maps that are already reflect-padded by ``pad`` ≥ d, laid out channels first: (out, N,
    H, W) for (k, N, H+2pad, W+2pad) input. The same products and sums in the same order, without padding the nine
    mixes, and one matrix product for a whole batch of tiles."""
    k, n, hp, wp = zp.shape
    o, h, w, off = conv.out_channels, hp - 2 * pad, wp - 2 * pad, pad - d
    weight = conv.weight.permute(0, 2, 3, 1).reshape(o * 9, k)
    mix = torch.mm(weight, zp.reshape(k, n * hp * wp)).view(o, 9, n, hp, wp)
    out = mix[:, 0, :, off : off + h, off : off + w] + conv.bias.view(o, 1, 1, 1)
    for t in range(1, 9):
        a, b = divmod(t, 3)
        out.add_(mix[:, t, :, off + a * d : off + a * d + h, off + b * d : off + b * d + w])
    return out


class MSDNet(nn.Module):
    """Mixed-scale dense network; ``forward`` gives logits, ``maps`` the layers' feature maps."""

    def __init__(self, config: MSDConfig | None = None):
        super().__init__()
        self.config = c = config or MSDConfig()
        self.layers = nn.ModuleList()
        for i in range(c.depth):
            d = c.dilation(i)
            conv = nn.Conv2d(c.in_channels + i * c.width, c.width, 3, padding=d, dilation=d, padding_mode="reflect")
            # the parameters live in a Conv2d (its layout and init); ``dilated_conv`` computes the same
            # convolution
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            self.layers.append(conv)
        self.head = nn.Conv2d(c.in_channels + c.n_maps, c.out_channels, 1)
        nn.init.normal_(self.head.weight, std=(1.0 / (c.in_channels + c.n_maps)) ** 0.5)
        nn.init.zeros_(self.head.bias)

    def _all_maps_train(self, x: torch.Tensor) -> torch.Tensor:
        # autograd-friendly: a fresh concatenation per layer (in-place writes would break backward)
        maps = x
        for i, conv in enumerate(self.layers):
            maps = torch.cat([maps, F.relu(dilated_conv(conv, maps, self.config.dilation(i)))], 1)
        return maps

    def _padded_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        # inference: one preallocated buffer, each layer reads the maps before it and writes its slot. The buffer
        # holds every map reflect-padded by the largest dilation once, so no layer pads its mixes again (about a
        # fifth of the time at 1024²); mixing is per pixel, so mixing padded maps gives the padded mixes, the same
        # numbers.
        # Channels come first, (C, N, H, W): a layer's inputs are one matrix for the whole batch (tiles scored
        # together cost one product per layer, not one per tile).
        c, w, pad = self.config.in_channels, self.config.width, self.config.max_dilation
        if min(x.shape[2:]) <= pad:  # reflect padding needs more pixels than its width
            return self._all_maps_train(x).transpose(0, 1), 0
        buf = x.new_empty(c + self.config.n_maps, x.shape[0], *(s + 2 * pad for s in x.shape[2:]))
        buf[:c] = F.pad(x, (pad,) * 4, mode="reflect").transpose(0, 1)
        for i, conv in enumerate(self.layers):
            k = c + i * w
            out = F.relu_(padded_conv(conv, buf[:k], self.config.dilation(i), pad))
            buf[k : k + w] = F.pad(out, (pad,) * 4, mode="reflect")
        return buf, pad

    def _all_maps_infer(self, x: torch.Tensor) -> torch.Tensor:
        buf, pad = self._padded_maps(x)
        h, w = x.shape[2:]
        return buf[:, :, pad : pad + h, pad : pad + w].transpose(0, 1)

    def all_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_channels + depth·width, H, W): the input and every layer's maps."""
        if torch.is_grad_enabled() and self.training:
            return self._all_maps_train(x)
        return self._all_maps_infer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.all_maps(x))

    @torch.inference_mode()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, depth·width + out_channels, H, W): the layers' maps and the output logits."""
        maps = self._all_maps_infer(x)
        return torch.cat([maps[:, self.config.in_channels :], self.head(maps)], 1)

    @torch.inference_mode()
    def project(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``weight @ features(x)`` per pixel, (N, K, H, W) for a (K, depth·width + out_channels) weight, without
        building the features: the head is folded into the weight, which mixes the padded maps where they are."""
        c, n = self.config.in_channels, self.config.n_maps
        full = weight.new_zeros(weight.shape[0], c + n)
        full[:, c:] = weight[:, :n]
        head = weight[:, n:]
        full += head @ self.head.weight.flatten(1)
        buf, pad = self._padded_maps(x)
        z = torch.mm(full, buf.reshape(c + n, -1)).view(-1, *buf.shape[1:])
        h, w = x.shape[2:]
        return (z[:, :, pad : pad + h, pad : pad + w] + (head @ self.head.bias)[:, None, None, None]).transpose(0, 1)


def save_msd(net: MSDNet, path: str | Path, name: str, card: dict | None = None) -> None:
    """Write the network as a state dict + config + card (a plain dict torch.load reads with weights_only)."""
    modelfile.save(path, modelfile.MSD, {"name": name, "config": dataclasses.asdict(net.config), "card": card or {},
                                "state_dict": modelfile.state_dict(net)})


def load_msd(path: str | Path) -> tuple[MSDNet, str, dict]:
    """Read a network written by :func:`save_msd`: (net in eval mode on the CPU, name, card)."""
    path = Path(path)
    net, payload = modelfile.load_network(path, modelfile.MSD, lambda config: MSDNet(MSDConfig(**config)))
    return net.eval(), str(payload.get("name", path.stem)), dict(payload.get("card", {}))
