"""Images: built-in names from ``skimage.data``, user files and folders.

:func:`load_image` turns any source into an RGB float tensor ``(1, 3, S, S)`` in ``[0, 1]``:
grayscale, palette, RGBA (composited on white) and 16-bit images become 8-bit-range RGB, EXIF
orientation is honoured, the shorter side is resized to ``S`` (antialiased) and the centre is
cropped. Missing, corrupt and too-small files raise :class:`~archbench.errors.ImageError` with one
clear line.

**Pixel limit.** A file's size is read from its header before it is decoded: an image of more
than :func:`max_image_pixels` pixels (default :data:`MAX_IMAGE_PIXELS`, 64 million, e.g.
8000 x 8000; set ``ARCHBENCH_MAX_IMAGE_PIXELS`` to change it, ``0`` for no limit) is refused with
an :class:`~archbench.errors.ImageError` instead of being decoded -- a 420 KB PNG can declare
12000 x 12000 pixels and need gigabytes once decoded ("decompression bomb").
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from archbench.errors import ImageError, UnknownNameError
from archbench.limits import MAX_IMAGE_PIXELS, MAX_PIXELS_ENV, max_image_pixels  # noqa: F401
from archbench.registry import Registry, unknown_name_message

log = logging.getLogger(__name__)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm")


@dataclass(frozen=True)
class BuiltinImage:
    """An image shipped with scikit-image."""

    name: str
    kind: str  # "photo" or "texture"
    loader: Callable[[], np.ndarray]
    description: str


IMAGES: Registry[BuiltinImage] = Registry("image")


def _skimage(name: str) -> Callable[[], np.ndarray]:
    def load() -> np.ndarray:
        import skimage.data

        return getattr(skimage.data, name)()

    return load


for _name, _kind, _desc in [
    ("astronaut", "photo", "Eileen Collins, portrait, 512x512"),
    ("coffee", "photo", "a cup of coffee, 400x600"),
    ("chelsea", "photo", "Chelsea the cat, 300x451"),
    ("rocket", "photo", "a rocket on the launch pad, 427x640"),
    ("immunohistochemistry", "photo", "stained tissue micrograph, 512x512"),
    ("hubble_deep_field", "photo", "Hubble deep field, 872x1000"),
    ("brick", "texture", "brick wall, grayscale 512x512"),
    ("grass", "texture", "grass, grayscale 512x512"),
    ("gravel", "texture", "gravel, grayscale 512x512"),
]:
    IMAGES.add(_name, BuiltinImage(_name, _kind, _skimage(_name), _desc))


def list_images(kind: str | None = None) -> list[str]:
    """Names of the built-in images, optionally only ``"photo"`` or ``"texture"``."""
    return [n for n, img in IMAGES.items() if kind is None or img.kind == kind]


def to_rgb_float(array: np.ndarray) -> np.ndarray:
    """Convert an image array of any common layout/depth to ``(H, W, 3)`` float32 in ``[0, 1]``."""
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        info = np.iinfo(a.dtype)
        maxval = 255 if info.max <= 255 else (65535 if info.max <= 65535 else info.max)
        a = a.astype(np.float64) / maxval
    else:
        a = a.astype(np.float64)
        if a.max() > 1.0:  # float images in 0..255
            a = a / 255.0
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 2:  # gray + alpha
        alpha = a[..., 1:2]
        a = np.repeat(a[..., :1] * alpha + (1 - alpha), 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:  # RGBA over white
        alpha = a[..., 3:4]
        a = a[..., :3] * alpha + (1 - alpha)
    elif not (a.ndim == 3 and a.shape[2] == 3):
        raise ImageError(f"unsupported image shape {a.shape}; expected H x W, H x W x 3 or H x W x 4")
    return np.clip(a, 0, 1).astype(np.float32)


def _open_checked(path: Path):
    """``PIL.Image.open(path)`` with only the header read, refused when it declares more than
    :func:`max_image_pixels` pixels (nothing is decoded)."""
    from PIL import Image

    if not path.exists():
        raise ImageError(f"image file {str(path)!r} does not exist")
    if path.is_dir():
        raise ImageError(f"{str(path)!r} is a folder; use list_image_files() or pass one image")
    limit = max_image_pixels()
    pil_limit = Image.MAX_IMAGE_PIXELS
    try:
        # PIL's own bomb check (errors above 2 x its limit) must not stand in for ours
        Image.MAX_IMAGE_PIXELS = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = pil_limit
    w, h = im.size
    if limit is not None and w * h > limit:
        im.close()
        raise ImageError(
            f"image {str(path)!r} declares {w}x{h} = {w * h / 1e6:.0f} million pixels, more than the limit of "
            f"{limit / 1e6:g} million; not decoded (set {MAX_PIXELS_ENV}=N to allow larger images)"
        )
    if w < 1 or h < 1:
        im.close()
        raise ImageError(f"cannot read {str(path)!r}: it declares an empty image ({w}x{h})")
    return im


def check_image(source: str | Path) -> tuple[int, int]:
    """Check an image source without decoding it: a built-in name, or a file whose header is
    readable and within the pixel limit. Returns ``(width, height)`` (built-ins: ``(0, 0)``).

    Raises:
        ImageError: missing, unreadable or too large a file. UnknownNameError: an unknown name.
    """
    from PIL import UnidentifiedImageError

    source = str(source)
    if source in IMAGES:
        return (0, 0)
    path = Path(source).expanduser()
    if path.suffix == "" and not path.exists() and "/" not in source:
        raise UnknownNameError(
            unknown_name_message("image", source, list_images()) + " (or give a path to an image file)"
        )
    try:
        with _open_checked(path) as im:
            return im.size
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {str(path)!r}: not an image file or corrupt") from None
    except OSError as exc:
        raise ImageError(f"cannot read {str(path)!r}: {exc}") from None
    except (ImageError, MemoryError):
        raise
    except Exception as exc:  # Pillow's decoders raise ValueError, SyntaxError, struct.error ... on bad files
        raise ImageError(f"cannot read {str(path)!r}: corrupt or unsupported image ({_reason(exc)})") from None


def _read_file(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with _open_checked(path) as im, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data": not the user's concern
            im.load()
            im = ImageOps.exif_transpose(im)
            if im.mode == "P":
                im = im.convert("RGBA")
            elif im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.int64)
                top = 65535 if arr.max() > 255 else 255
                return to_rgb_float(np.clip(arr, 0, top).astype(np.uint16 if top > 255 else np.uint8))
            elif im.mode == "F":
                return to_rgb_float(np.asarray(im, dtype=np.float32))
            elif im.mode == "CMYK" or im.mode == "YCbCr" or im.mode == "LAB" or im.mode == "HSV":
                im = im.convert("RGB")
            elif im.mode == "1":
                im = im.convert("L")
            elif im.mode == "LA" or im.mode == "PA":
                im = im.convert("RGBA")
            return to_rgb_float(np.asarray(im))
    except UnidentifiedImageError:
        raise ImageError(f"cannot read {str(path)!r}: not an image file or corrupt") from None
    except (OSError, Image.DecompressionBombError) as exc:
        raise ImageError(f"cannot read {str(path)!r}: corrupt or truncated image ({exc})") from None
    except MemoryError:
        raise ImageError(f"cannot read {str(path)!r}: not enough memory to decode it") from None
    except ImageError:
        raise
    except Exception as exc:  # Pillow's decoders raise ValueError, SyntaxError, struct.error ... on bad files
        raise ImageError(f"cannot read {str(path)!r}: corrupt or unsupported image ({_reason(exc)})") from None


def _reason(exc: BaseException) -> str:
    """``Type: message`` of a decoder's exception, on one short line."""
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@lru_cache(maxsize=32)
def _read_cached(source: str) -> np.ndarray:
    if source in IMAGES:
        return to_rgb_float(IMAGES.get(source).loader())
    path = Path(source).expanduser()
    if path.suffix == "" and not path.exists() and "/" not in source:
        raise UnknownNameError(
            unknown_name_message("image", source, list_images()) + " (or give a path to an image file)"
        )
    return _read_file(path)


def read_image(source: str | Path) -> np.ndarray:
    """The full-resolution image ``(H, W, 3)`` float32 in ``[0, 1]`` for a built-in name or a path."""
    return _read_cached(str(source)).copy()


def resize_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize ``(B, 3, H, W)`` so the shorter side is ``size`` (antialiased), then centre-crop."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if (nh, nw) != (h, w):
        image = F.interpolate(image, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return image[..., top : top + size, left : left + size].clamp(0, 1).contiguous()


def load_image(source: str | Path, size: int | None = None, min_side: int = 1) -> torch.Tensor:
    """Load an image as ``(1, 3, size, size)`` float32 in ``[0, 1]``.

    Args:
        source: built-in name (``archbench list images``) or path to an image file.
        size: output side; ``None`` keeps the original size (no crop).
        min_side: the smallest acceptable original side (what the chosen layer needs).

    Raises:
        ImageError: missing, corrupt, unsupported or too-small image.
        UnknownNameError: an unknown built-in name.
    """
    arr = read_image(source)
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise ImageError(f"image {str(source)!r} is {h}x{w} px, smaller than the {min_side} px the chosen layer needs")
    t = torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).contiguous()
    if size is not None:
        if size < 1:
            raise ImageError(f"invalid image size {size}")
        t = resize_crop(t, size)
    return t


def list_image_files(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ImageError(f"{str(folder)!r} is not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ImageError(f"folder {str(folder)!r} contains no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def expand_sources(sources: list[str]) -> list[str]:
    """Expand folders in ``sources`` into their image files; keep names and files as they are."""
    out: list[str] = []
    for s in sources:
        p = Path(s).expanduser()
        if s not in IMAGES and p.is_dir():
            out.extend(str(f) for f in list_image_files(p))
        else:
            out.append(s)
    return out


def image_label(source: str) -> str:
    """Short label for results: the built-in name or the file's stem."""
    return source if source in IMAGES else Path(source).stem


def save_image(image: torch.Tensor, path: str | Path) -> Path:
    """Write ``(3, H, W)`` or ``(1, 3, H, W)`` in ``[0, 1]`` as an 8-bit PNG, atomically (a failed
    write leaves no temporary file and raises :class:`~archbench.errors.OutputError`)."""
    import io

    from PIL import Image

    from archbench.fileio import atomic_write

    t = image.detach().float().cpu().clamp(0, 1)
    if t.ndim == 4:
        t = t[0]
    arr = (t.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return atomic_write(path, buf.getvalue(), what="image")
