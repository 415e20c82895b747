"""Image parameterisations: what an optimiser moves when it optimises an image.

An optimiser moves a vector ``z`` (``(B, D)``); the objective sees the image ``x = decode(z)``
``(B, 3, H, W)``. The choice does not change the minimiser of a loss that is a function of ``x``;
it changes which directions a gradient-based optimiser moves first, and where it starts.

``pixel``
    ``z`` is the image (flattened). The paper's choice: a white-noise start, every pixel a free
    coordinate.

``fourier``
    ``z`` holds the real and imaginary parts of the ``rfft2`` coefficients of the image's offset
    from mid-grey, each divided by a spectral scale ``s(f) = (f_0 / max(f, f_0))^decay`` with
    ``f`` the radial frequency in cycles per pixel and ``f_0 = 1 / max(H, W)`` (so ``s = 1`` at
    the lowest frequencies and ``s ≈ 1/(0.7·max(H, W))`` at the highest)::

        x = 0.5 + irfft2(s ⊙ z, norm="ortho")

    A unit gradient step in ``z`` then moves low frequencies ``1/s`` times more than high ones:
    the 1/f preconditioning of lucid/lucent's ``fft_image`` (Olah et al., "Feature
    Visualization", 2017), here without a sigmoid or colour decorrelation, so the image is a linear
    function of ``z`` and L-BFGS sees the same curvature up to a fixed change of basis. A start
    drawn as ``z ~ N(0, std²)`` is faint 1/f ("pink") noise around mid-grey.

Why it matters for deep layers: a random VGG's pool4/pool5 features barely see the
high-frequency content of an image (it lies close to their null space), so a white-noise start's
noise is never removed -- the loss is tiny while the picture is noise. From a faint 1/f start under
the 1/f preconditioning the optimiser builds the picture's layout from the low frequencies up and
leaves little high-frequency noise to remove (``docs/tasks.md``, "Deep layers").
"""

from __future__ import annotations

import torch

from archbench.errors import ConfigError

PARAMS = ("pixel", "fourier")
#: offset of the Fourier parameterisation's image (its ``z = 0`` is a flat mid-grey image)
GREY = 0.5


def frequencies(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Radial frequency ``sqrt(fy² + fx²)`` in cycles per pixel of the ``rfft2`` grid, ``(h, w//2+1)``."""
    fy = torch.fft.fftfreq(h, device=device)[:, None]
    fx = torch.fft.rfftfreq(w, device=device)[None, :]
    return (fy.pow(2) + fx.pow(2)).sqrt()


def spectrum_scale(h: int, w: int, decay: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """``s(f) = (f_0 / max(f, f_0))^decay`` on the ``rfft2`` grid, ``f_0 = 1/max(h, w)``: 1 at the
    lowest frequencies, falling as ``f^-decay`` (``decay = 0``: white, every frequency alike)."""
    f0 = 1.0 / max(h, w)
    return (f0 / frequencies(h, w, device).clamp_min(f0)).pow(decay)


class ImageParam:
    """Base of the parameterisations: ``encode`` images to ``z`` and ``decode`` back (batched)."""

    name = ""

    def encode(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """``(B, 3, H, W)`` images -> ``(B, D)`` coordinates."""
        raise NotImplementedError

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """``(B, D)`` coordinates -> ``(B, 3, H, W)`` images (differentiable)."""
        raise NotImplementedError

    def noise(self, batch: int, seed: int, std: float, device: torch.device) -> torch.Tensor:  # pragma: no cover
        """A seeded random start in ``z`` (the same draw for every sample of the batch)."""
        raise NotImplementedError


class PixelParam(ImageParam):
    """``z`` is the image, flattened."""

    name = "pixel"

    def __init__(self, channels: int, h: int, w: int) -> None:
        self.shape = (channels, h, w)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return z.reshape(z.shape[0], *self.shape)

    def noise(self, batch: int, seed: int, std: float, device: torch.device) -> torch.Tensor:
        """Uniform white noise in [0, 1] (``std`` is ignored: the paper's start)."""
        gen = torch.Generator().manual_seed(int(seed))
        one = torch.rand((1, *self.shape), generator=gen)
        return one.expand(batch, *self.shape).reshape(batch, -1).contiguous().to(device)


class FourierParam(ImageParam):
    """``x = 0.5 + irfft2(s ⊙ z, norm="ortho")`` (see the module docstring)."""

    name = "fourier"

    def __init__(self, channels: int, h: int, w: int, decay: float = 1.0, device: torch.device | str = "cpu") -> None:
        self.channels, self.h, self.w = channels, h, w
        self.scale = spectrum_scale(h, w, decay, device)

    @property
    def _spec_shape(self) -> tuple[int, ...]:
        return (self.channels, self.h, self.w // 2 + 1, 2)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.fft.rfft2(x.float() - GREY, norm="ortho") / self.scale.to(x.device)
        return torch.view_as_real(spec).reshape(x.shape[0], -1).contiguous()

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        spec = torch.view_as_complex(z.reshape(z.shape[0], *self._spec_shape).contiguous())
        return GREY + torch.fft.irfft2(spec * self.scale.to(z.device), s=(self.h, self.w), norm="ortho")

    def noise(self, batch: int, seed: int, std: float, device: torch.device) -> torch.Tensor:
        """``z ~ N(0, std²)``: faint 1/f noise around mid-grey (the same draw for every sample)."""
        gen = torch.Generator().manual_seed(int(seed))
        one = torch.randn((1, *self._spec_shape), generator=gen) * std
        z = one.reshape(1, -1).expand(batch, -1).contiguous().to(device)
        # round trip once: coefficients irfft2 ignores (imaginary parts of self-conjugate bins)
        # are dropped, so the start is exactly the image it renders
        return self.encode(self.decode(z))


def make_param(name: str, channels: int, h: int, w: int, decay: float = 1.0, device: torch.device | str = "cpu") -> ImageParam:
    """The parameterisation ``name`` (one of :data:`PARAMS`) of ``(channels, h, w)`` images."""
    if name == "pixel":
        return PixelParam(channels, h, w)
    if name == "fourier":
        return FourierParam(channels, h, w, decay, device)
    raise ConfigError(f"unknown param {name!r}; valid: {', '.join(PARAMS)}")
