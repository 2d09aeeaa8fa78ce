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
    weight = tap_weights(conv, 0, k)
    # one 2D GEMM per image: torch's batched matmul with a broadcast weight is several times slower
    mix = torch.stack([torch.mm(weight, zi.reshape(k, h * w)) for zi in z])
    mix = F.pad(mix.view(n, o * 9, h, w), (d, d, d, d), mode="reflect").view(n, o, 9, h + 2 * d, w + 2 * d)
    out = mix[:, :, 0, :h, :w] + conv.bias.view(1, o, 1, 1)
    for t in range(1, 9):
        a, b = divmod(t, 3)
        out = out + mix[:, :, t, a * d : a * d + h, b * d : b * d + w]
    return out


GROUP = 2  #: layers whose mixes of the maps before them are made by one matrix product (inference)


def shifted_sum(mix: torch.Tensor, bias: torch.Tensor, d: int, pad: int) -> torch.Tensor:
    """The 3×3 dilated convolution from its nine mixes: ``mix`` (out, 9, N, H+2pad, W+2pad) holds, for each of the
    nine kernel taps, the maps already mixed by that tap's weights (reflect-padded by ``pad`` ≥ d); the sum of the
    nine shifted views and the bias is (out, N, H, W)."""
    o, _, _, hp, wp = mix.shape
    h, w, off = hp - 2 * pad, wp - 2 * pad, pad - d
    out = mix[:, 0, :, off : off + h, off : off + w] + bias.view(o, 1, 1, 1)
    for t in range(1, 9):
        a, b = divmod(t, 3)
        out.add_(mix[:, t, :, off + a * d : off + a * d + h, off + b * d : off + b * d + w])
    return out


def tap_weights(conv: nn.Conv2d, start: int, stop: int) -> torch.Tensor:
    """The weights of input maps ``start:stop`` of a 3×3 convolution as (out·9, stop − start): one row per output
    map and kernel tap, the matrix that mixes those maps into the nine taps' mixes."""
    return conv.weight[:, start:stop].permute(0, 2, 3, 1).reshape(conv.out_channels * 9, stop - start)


def mixed_float(mixer: torch.Tensor, flat: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """``mixer @ flat`` in float32 for low-precision maps ``flat`` (C, P), ``chunk`` maps at a time (a float32 copy of
    a few maps, never of all): the projection's many-term sum keeps float32's precision, so a perceptron reads the
    same logits from its folded weights as from the features themselves."""
    if flat.dtype == torch.float32:
        return torch.mm(mixer, flat)
    out = torch.zeros(len(mixer), flat.shape[1], dtype=torch.float32, device=flat.device)
    for a in range(0, flat.shape[0], chunk):
        out.addmm_(mixer[:, a : a + chunk].float(), flat[a : a + chunk].float())
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

    @torch.no_grad()  # inference only: the maps are written in place into one buffer
    def _padded_maps(self, x: torch.Tensor, mixer: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        # inference: one preallocated buffer, each layer reads the maps before it and writes its slot. The buffer
        # holds every map reflect-padded by the largest dilation once, so no layer pads its mixes again (about a
        # fifth of the time at 1024²); mixing is per pixel, so mixing padded maps gives the padded mixes, the same
        # numbers. Channels come first, (C, N, H, W): a layer's inputs are one matrix for the whole batch (tiles
        # scored together cost one product per layer, not one per tile).
        # Reading the maps dominates (the product has 9 rows per layer), so GROUP layers are mixed from the maps
        # before the first of them by one product, and each adds the few maps its group made since (1024²: 1.17 s →
        # 0.77 s for the three shipped extractors on 2 cores; the same numbers up to float rounding). ``mixer``
        # (K, C) also mixes all the maps (``project``): its rows join the last group's product.
        c, w, pad = self.config.in_channels, self.config.width, self.config.max_dilation
        if min(x.shape[2:]) <= pad:  # reflect padding needs more pixels than its width
            maps = self._all_maps_train(x).transpose(0, 1)
            return maps, 0, None if mixer is None else mixed_float(mixer, maps.reshape(len(maps), -1))
        buf = x.new_empty(c + self.config.n_maps, x.shape[0], *(s + 2 * pad for s in x.shape[2:]))
        buf[:c] = F.pad(x, (pad,) * 4, mode="reflect").transpose(0, 1)
        low = buf.dtype != torch.float32  # bfloat16 maps: the projection is summed in float32 (mixed_float)
        flat, extra = buf.view(buf.shape[0], -1), 0 if mixer is None or low else len(mixer)
        mixes = buf.new_empty(GROUP * w * 9 + extra, flat.shape[1])  # reused by every group
        for first in range(0, self.config.depth, GROUP):
            layers = range(first, min(first + GROUP, self.config.depth))
            k0, last = c + first * w, first + GROUP >= self.config.depth
            weight = torch.cat([tap_weights(self.layers[i], 0, k0) for i in layers]
                               + ([mixer[:, :k0]] if last and extra else []))
            both = torch.mm(weight, flat[:k0], out=mixes[: len(weight)])
            mix = both[: len(layers) * w * 9].view(len(layers), w * 9, -1)
            for n, i in enumerate(layers):
                k = c + i * w
                if k > k0:  # the maps made by this group's earlier layers
                    mix[n].addmm_(tap_weights(self.layers[i], k0, k), flat[k0:k])
                out = shifted_sum(mix[n].view(w, 9, *buf.shape[1:]), self.layers[i].bias, self.config.dilation(i), pad)
                buf[k : k + w] = F.pad(F.relu_(out), (pad,) * 4, mode="reflect")
        if mixer is None:
            return buf, pad, None
        if low:
            return buf, pad, mixed_float(mixer, flat)
        return buf, pad, both[len(layers) * w * 9 :].addmm_(mixer[:, k0:], flat[k0:])

    def _all_maps_infer(self, x: torch.Tensor) -> torch.Tensor:
        buf, pad, _ = self._padded_maps(x)
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
        maps = self._all_maps_infer(x)  # in the network's dtype; the head and what is handed out in float32
        out = F.conv2d(maps.float(), self.head.weight.float(), self.head.bias.float())
        return torch.cat([maps[:, self.config.in_channels :].float(), out], 1)

    @torch.inference_mode()
    def project(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``weight @ features(x)`` per pixel, (N, K, H, W) for a (K, depth·width + out_channels) weight, without
        building the features: the head is folded into the weight, which mixes the padded maps where they are."""
        c, n = self.config.in_channels, self.config.n_maps
        weight = weight.float()  # folded and summed in float32 whatever the maps' dtype (mixed_float)
        full = weight.new_zeros(weight.shape[0], c + n)
        full[:, c:] = weight[:, :n]
        head = weight[:, n:]
        full += head @ self.head.weight.flatten(1).float()
        buf, pad, z = self._padded_maps(x, full)
        z = z.view(-1, *buf.shape[1:])
        h, w = x.shape[2:]
        bias = (head @ self.head.bias.float())[:, None, None, None]
        return (z[:, :, pad : pad + h, pad : pad + w] + bias).transpose(0, 1)


def save_msd(net: MSDNet, path: str | Path, name: str, card: dict | None = None) -> None:
    """Write the network as a state dict + config + card (a plain dict torch.load reads with weights_only)."""
    modelfile.save(path, modelfile.MSD, {"name": name, "config": dataclasses.asdict(net.config), "card": card or {},
                                "state_dict": modelfile.state_dict(net)})


def load_msd(path: str | Path) -> tuple[MSDNet, str, dict]:
    """Read a network written by :func:`save_msd`: (net in eval mode on the CPU, name, card)."""
    path = Path(path)
    net, payload = modelfile.load_network(path, modelfile.MSD, lambda config: MSDNet(MSDConfig(**config)))
    return net.eval(), str(payload.get("name", path.stem)), dict(payload.get("card", {}))
