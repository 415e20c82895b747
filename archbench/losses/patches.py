"""The "neural patches" loss (Li & Wand 2016, CNNMRF; used by Champandard 2016), per sample.

For features ``F`` of the output at one layer and ``S`` of the source (same channel count ``C``,
any sizes), take every ``k × k`` patch (``k = 3``, stride 1, no padding) as a vector of length
``K = C·k²``: output patches ``P_i`` (``i = 1 … N_p``) and source patches ``Q_j`` (``j = 1 … N_s``).

* **Matching.** Each output patch is matched to the source patch of highest normalised
  cross-correlation, in Li & Wand's sense: the cosine similarity of the patch vectors (no mean
  subtraction),

      NCC(i, j) = ⟨P_i, Q_j⟩ / (‖P_i‖·‖Q_j‖),     j*(i) = argmax_j NCC(i, j).

  The argmax is a constant: no gradient flows through the matching (as in CNNMRF, where the
  nearest neighbours are recomputed at each evaluation and then held fixed for the gradient).
  Dividing by ``‖P_i‖`` does not change the argmax over ``j``, so the matching computes
  ``⟨P_i, Q_j⟩/‖Q_j‖`` only. An all-zero output patch has NCC 0 with every source patch and is
  matched to the first one.
* **Loss.** The mean squared difference between each output patch and its match:

      E = 1/(N_p·K) · Σ_i ‖P_i − Q_{j*(i)}‖².

  ``E = 0`` when the output features equal the source's (each patch matches itself).
* **Variety (optional, weight ``v``).** Re-using a few source patches everywhere is what the
  matching alone allows (many output patches may pick the same ``j``). A penalty on the usage
  counts themselves, e.g. ``Σ_j (u_j − N_p/N_s)²``, would be piecewise constant in the image (the
  counts come from an argmax) and so give no gradient. The variety term used here is the reverse
  (coverage) direction of bidirectional similarity (Simakov et al. 2008): every source patch
  should appear somewhere in the output,

      V = 1/(N_s·K) · Σ_j ‖Q_j − P_{i*(j)}‖²,     i*(j) = argmax_i NCC(i, j),

  and the loss becomes ``E + v·V``. When a few source patches are re-used everywhere, the unused
  ones have no close output patch and ``V`` is large; its gradient pulls the output patch closest
  to each source patch towards it, spreading the usage. ``v = 0`` (default) is the plain loss.

Memory: the similarity matrix is ``N_p × N_s`` per sample; it is computed in chunks of output
patches of at most ``max_elements`` entries (all samples of a chunk together), so large layers
fit. The patch vectors themselves (``N·K`` values, about ``9×`` the feature map) are kept.
:func:`patch_usage` reports how the matches are spread (a diagnostic for results).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from archbench.architectures.base import TappedNetwork
from archbench.errors import ConfigError

#: side of the patches (3 × 3, as Li & Wand and Champandard)
PATCH_SIZE = 3
#: largest number of similarity entries computed at once (2^25 float32 values = 128 MiB)
MAX_ELEMENTS = 1 << 25
#: layers of the patch loss when the network has them (Champandard 2016)
DEFAULT_PATCH_LAYERS = ("conv3_1", "conv4_1")


def extract_patches(f: torch.Tensor, size: int = PATCH_SIZE, stride: int = 1) -> torch.Tensor:
    """All ``size × size`` patches of features ``(B, C, H, W)`` as vectors ``(B, N, C·size²)``.

    Raises:
        ConfigError: the feature map is smaller than one patch.
    """
    if f.ndim != 4:
        raise ConfigError(f"the patch loss needs spatial features (B, C, H, W), got shape {tuple(f.shape)}")
    if f.shape[-1] < size or f.shape[-2] < size:
        raise ConfigError(
            f"feature map {f.shape[-2]}x{f.shape[-1]} is smaller than a {size}x{size} patch; use a larger image or a shallower layer"
        )
    return F.unfold(f, size, stride=stride).transpose(1, 2)


@dataclass
class PatchSource:
    """The source patches of one layer, prepared for matching.

    Attributes:
        patches: ``(S, N_s, K)`` float32 patch vectors (``S`` = 1 to share one source over a batch,
            or the batch size for one source per sample).
        inv_norm: ``(S, N_s)`` reciprocal L2 norms ``1/‖Q_j‖`` (0 for an all-zero patch).
        size: patch side.
    """

    patches: torch.Tensor
    inv_norm: torch.Tensor
    size: int = PATCH_SIZE

    @property
    def count(self) -> int:
        """Number of source patches ``N_s``."""
        return self.patches.shape[1]

    def select(self, index: torch.Tensor | None) -> PatchSource:
        """The sources of the samples ``index`` (itself when shared or ``index`` is None)."""
        if index is None or self.patches.shape[0] == 1:
            return self
        index = index.to(self.patches.device)
        return PatchSource(self.patches[index], self.inv_norm[index], self.size)


def _inverse_norm(patches: torch.Tensor) -> torch.Tensor:
    norm = patches.norm(dim=-1)
    return torch.where(norm > 0, 1.0 / norm.clamp_min(1e-30), torch.zeros_like(norm))


@torch.no_grad()
def patch_source(f: torch.Tensor, size: int = PATCH_SIZE, stride: int = 1) -> PatchSource:
    """Prepare the source features ``(S, C, H, W)`` for :func:`patch_loss` (stride between source
    patches ``stride``; 1 takes every patch)."""
    patches = extract_patches(f.detach().float(), size, stride)
    return PatchSource(patches.contiguous(), _inverse_norm(patches), size)


def _chunk_rows(batch: int, n_rows: int, n_cols: int, max_elements: int) -> int:
    return max(1, min(n_rows, max_elements // max(1, batch * n_cols)))


@torch.no_grad()
def match_patches(
    patches: torch.Tensor, source: PatchSource, max_elements: int = MAX_ELEMENTS, reverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Nearest source patch of every output patch by NCC (see the module docstring).

    Args:
        patches: output patch vectors ``(B, N_p, K)`` (from :func:`extract_patches`).
        source: the source patches (``S`` = 1 or ``B``).
        max_elements: largest number of similarity entries held at once.
        reverse: also return, for every source patch, the output patch of highest NCC.

    Returns:
        ``(j_star, i_star)``: ``(B, N_p)`` indices into the source patches, and ``(B, N_s)``
        indices into the output patches (``None`` unless ``reverse``).
    """
    p = patches.detach().float()
    B, n_p, K = p.shape
    q = source.patches.to(p.device)
    if q.shape[-1] != K:
        raise ConfigError(f"output patches have {K} values, source patches {q.shape[-1]}: different channel counts")
    if q.shape[0] not in (1, B):
        raise ConfigError(f"source batch {q.shape[0]} does not match the output batch {B}")
    inv_q = source.inv_norm.to(p.device)
    n_s = q.shape[1]
    qt = q.transpose(1, 2)
    j_star = torch.empty(B, n_p, dtype=torch.long, device=p.device)
    if reverse:
        best_val = torch.full((B, n_s), -float("inf"), device=p.device)
        i_star = torch.zeros(B, n_s, dtype=torch.long, device=p.device)
        inv_p = _inverse_norm(p)
    step = _chunk_rows(B, n_p, n_s, max_elements)
    with torch.autocast(device_type=p.device.type, enabled=False):
        for s in range(0, n_p, step):
            e = min(s + step, n_p)
            sims = torch.matmul(p[:, s:e], qt) * inv_q[:, None, :]  # ⟨P_i, Q_j⟩/‖Q_j‖: (B, n, N_s)
            j_star[:, s:e] = sims.argmax(dim=2)
            if reverse:
                ncc = sims * inv_p[:, s:e, None]
                val, arg = ncc.max(dim=1)
                better = val > best_val
                best_val = torch.where(better, val, best_val)
                i_star = torch.where(better, arg + s, i_star)
    return j_star, (i_star if reverse else None)


def _gather(vectors: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``vectors[b, index[b, i]]`` for ``vectors (S, N, K)`` (S = 1 broadcast) -> ``(B, n, K)``."""
    B = index.shape[0]
    v = vectors.expand(B, -1, -1) if vectors.shape[0] == 1 and B > 1 else vectors
    return torch.gather(v, 1, index[..., None].expand(-1, -1, v.shape[-1]))


def patch_loss(
    f: torch.Tensor,
    source: PatchSource,
    variety: float = 0.0,
    max_elements: int = MAX_ELEMENTS,
) -> torch.Tensor:
    """Per-sample neural-patches loss ``E + variety·V`` ``(B,)`` (formulas in the module docstring).

    Args:
        f: output features ``(B, C, H, W)``; the gradient flows into them.
        source: from :func:`patch_source` (``S`` = 1 shared, or ``S`` = B).
        variety: weight ``v`` of the coverage term (0 = off).
        max_elements: chunk limit of the similarity computation.
    """
    if variety < 0:
        raise ConfigError(f"variety must be >= 0, got {variety}")
    p = extract_patches(f.float(), source.size)
    j_star, i_star = match_patches(p, source, max_elements, reverse=variety > 0)
    q = source.patches.to(p.device)
    matched = _gather(q, j_star)
    loss = (p - matched).pow(2).mean(dim=(1, 2))
    if variety > 0:
        assert i_star is not None
        nearest_out = torch.gather(p, 1, i_star[..., None].expand(-1, -1, p.shape[-1]))
        cover = (nearest_out - q.expand(p.shape[0], -1, -1)).pow(2).mean(dim=(1, 2))
        loss = loss + variety * cover
    return loss


@torch.no_grad()
def patch_usage(f: torch.Tensor, source: PatchSource, max_elements: int = MAX_ELEMENTS) -> dict[str, torch.Tensor]:
    """How the output patches' matches spread over the source, per sample ``(B,)``:

    * ``distinct``: fraction of source patches used at least once;
    * ``max_share``: largest fraction of output patches matched to one source patch.
    """
    p = extract_patches(f.float(), source.size)
    j_star, _ = match_patches(p, source, max_elements)
    counts = torch.zeros(p.shape[0], source.count, device=p.device)
    counts.scatter_add_(1, j_star, torch.ones_like(j_star, dtype=counts.dtype))
    return {
        "distinct": (counts > 0).float().mean(1),
        "max_share": counts.max(1).values / p.shape[1],
    }


def default_patch_layers(net: TappedNetwork) -> list[str]:
    """Layers of the patch loss by default: the net's ``default_patch_layers`` if declared;
    ``conv3_1, conv4_1`` when present (Champandard 2016); otherwise the first spatial tap of
    stride levels 2 and 3 (a non-pool tap where there is one)."""
    if net.default_patch_layers:
        return list(net.default_patch_layers)
    names = set(net.tap_names)
    if all(n in names for n in DEFAULT_PATCH_LAYERS):
        return list(DEFAULT_PATCH_LAYERS)
    out = []
    for level in (2, 3):
        taps = [t for t in net.taps_at_level(level) if t.spatial]
        if taps:
            non_pool = [t for t in taps if not t.name.startswith("pool")]
            out.append((non_pool or taps)[0].name)
    if not out:
        raise ConfigError("the network has no spatial taps at stride levels 2 and 3 for the patch loss; give the layers")
    return out


def check_patch_layers(net: TappedNetwork, layers: list[str], size: int, patch: int = PATCH_SIZE) -> None:
    """Every layer's feature map at input ``size`` holds at least one ``patch × patch`` patch
    (its side is taken as ``size // 2**level``, the floor rule of 2×2 pooling and stride-2 convolutions)."""
    for layer in layers:
        tap = net.tap(layer)
        if not tap.spatial:
            raise ConfigError(f"layer {layer!r} is not spatial; the patch loss needs conv/pool taps")
        side = size >> tap.level
        if side < patch:
            need = patch << tap.level
            raise ConfigError(
                f"layer {layer!r} is {side}x{side} at {size} px, smaller than a {patch}x{patch} patch; "
                f"the patch loss needs at least {need} px there (check --size and --phases)"
            )
