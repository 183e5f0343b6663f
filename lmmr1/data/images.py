"""The one image loader: every path from a record to pixels goes through `load_image`.

What it guarantees, in the order it checks (each failure is an `ImageLoadError` whose `reason` is one
of `REASONS`, so converters can count rejected rows by cause):

1. Where the bytes come from. A record's image is a path relative to the dataset root (the folder that
   holds the records file). The path is resolved (symlinks followed) and must stay inside the root:
   "../../etc/passwd", an absolute path elsewhere, or a symlink pointing out are `outside_root`.
   URLs (http, https, data:, file:, any "scheme:") are `remote_refused` unless `allow_remote=True`;
   then http(s) and base64 `data:` URIs are fetched with a timeout and a byte limit.
2. Size before decoding. Files over `max_file_bytes` are `too_large`. The header's width x height is
   checked against `max_source_pixels` before any pixel is decoded, so a 20000 x 20000 header (a
   decompression bomb: 400 M pixels, 1.2 GB as RGB) is refused after reading a few bytes. Pillow's own
   guard (`Image.MAX_IMAGE_PIXELS`, an error at twice its value) also applies.
3. Decoding. A file Pillow cannot identify or decode is `corrupt`; a truncated one is `truncated`
   (Pillow's `ImageFile.LOAD_TRUNCATED_IMAGES` must stay False, its default, for this to be caught).
4. Colour. The result is RGB; transparency is composited onto white (as `qwen_vl_utils.to_rgb` does).
5. Size for the model. `qwen_vl_utils.smart_resize(h, w, factor=28, min_pixels, max_pixels)` gives the
   size Qwen2.5-VL's processor would pick with the same min/max pixels (both sides multiples of 28 =
   patch 14 x merge 2, pixel count within [min_pixels, max_pixels], aspect ratio kept); the image is
   resized to it with bicubic resampling, as `qwen_vl_utils.fetch_image` does. Because the output
   already satisfies the processor's constraints, the HF processor and vLLM leave it as is, so rollout
   and training see the same image tokens. Aspect ratios over 200 are `bad_aspect` (smart_resize's
   limit).

Defaults are LMM-R1's (`--processor_kwargs` default in TideDra/lmm-r1 `openrlhf/cli/train_ppo_ray.py`):
min_pixels = 4*28*28 = 3,136 and max_pixels = 16384*28*28 = 12,845,056, Qwen2.5-VL's own defaults.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from lmmr1.data.records import is_url

REASONS = (
    "missing",         # no such file (or not a regular file)
    "outside_root",    # the path escapes the dataset root
    "remote_refused",  # a URL while allow_remote is False
    "remote_failed",   # a URL that could not be fetched
    "too_large",       # file bytes or header pixel count over the limit
    "corrupt",         # not an image Pillow can identify or decode
    "truncated",       # the file ends before the image data does
    "bad_aspect",      # aspect ratio over qwen_vl_utils.MAX_RATIO (200)
)


class ImageLoadError(ValueError):
    """An image that cannot be used. `reason` is one of REASONS; `ref` is the reference as given."""

    def __init__(self, ref: str, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        self.ref = ref
        self.reason = reason
        self.detail = detail
        super().__init__(f"image {ref!r}: {reason}: {detail}")


@dataclass(frozen=True)
class ImageConfig:
    """How images are loaded and sized. Use the same values as the model's processor."""

    min_pixels: int = 4 * 28 * 28
    """Fewest pixels after resizing (LMM-R1 / Qwen2.5-VL default: 4 merged patches = 3,136)."""
    max_pixels: int = 16384 * 28 * 28
    """Most pixels after resizing (LMM-R1 / Qwen2.5-VL default: 16,384 merged patches = 12,845,056)."""
    patch_factor: int = 28
    """Side lengths are multiples of this: vision patch size (14) x spatial merge size (2) for Qwen2.5-VL."""
    max_source_pixels: int = 50_000_000
    """Refuse images whose header declares more pixels than this (decompression-bomb guard)."""
    max_file_bytes: int = 64 * 1024 * 1024
    """Refuse files (or downloads) larger than this many bytes."""
    allow_remote: bool = False
    """Fetch http(s) URLs and base64 data: URIs. Off by default: training never downloads."""
    remote_timeout_s: float = 20.0
    """Timeout of one remote fetch."""
    resize: bool = True
    """Apply smart_resize. Off only to inspect the source image."""

    @classmethod
    def from_processor(cls, processor, **overrides) -> "ImageConfig":
        """The min/max pixels and patch factor of a Qwen2-VL-style (Auto)Processor or its image processor.

        transformers 5 keeps them as `size={"shortest_edge": min_pixels, "longest_edge": max_pixels}`;
        older versions as `min_pixels` / `max_pixels` attributes."""
        image_processor = getattr(processor, "image_processor", processor)
        size = getattr(image_processor, "size", None) or {}
        min_pixels = size.get("shortest_edge") or getattr(image_processor, "min_pixels", None)
        max_pixels = size.get("longest_edge") or getattr(image_processor, "max_pixels", None)
        patch = getattr(image_processor, "patch_size", None)
        merge = getattr(image_processor, "merge_size", None)
        if not (min_pixels and max_pixels and patch and merge):
            raise ValueError(
                f"ImageConfig.from_processor: {type(image_processor).__name__} has no min/max pixels, patch_size "
                "and merge_size (not a Qwen2-VL-style image processor)"
            )
        values = {"min_pixels": int(min_pixels), "max_pixels": int(max_pixels), "patch_factor": int(patch) * int(merge)}
        values.update(overrides)
        return cls(**values)

    def __post_init__(self) -> None:
        if not 0 < self.min_pixels <= self.max_pixels:
            raise ValueError(f"ImageConfig: need 0 < min_pixels <= max_pixels, got {self.min_pixels}, {self.max_pixels}")
        if self.patch_factor <= 0:
            raise ValueError(f"ImageConfig: patch_factor must be positive, got {self.patch_factor}")


def resolve_image_path(ref: str, root: str | Path) -> Path:
    """The file `ref` names, resolved (symlinks followed) and checked to lie inside `root`."""
    root_resolved = Path(root).resolve()
    candidate = (root_resolved / ref).resolve()  # an absolute `ref` replaces the root: checked below
    if not candidate.is_relative_to(root_resolved):
        raise ImageLoadError(ref, "outside_root", f"resolves to {candidate}, outside the dataset root {root_resolved}")
    return candidate


def target_size(width: int, height: int, config: ImageConfig) -> tuple[int, int]:
    """(width, height) after `qwen_vl_utils.smart_resize` with the config's factor and pixel bounds."""
    from qwen_vl_utils import smart_resize

    new_h, new_w = smart_resize(
        height, width, factor=config.patch_factor, min_pixels=config.min_pixels, max_pixels=config.max_pixels
    )
    return new_w, new_h


def _read_local(ref: str, root: str | Path, config: ImageConfig) -> bytes:
    path = resolve_image_path(ref, root)
    if not path.is_file():
        raise ImageLoadError(ref, "missing", f"no file at {path}")
    size = path.stat().st_size
    if size > config.max_file_bytes:
        raise ImageLoadError(ref, "too_large", f"{size} bytes > max_file_bytes {config.max_file_bytes}")
    return path.read_bytes()


def _read_remote(ref: str, config: ImageConfig) -> bytes:
    if not config.allow_remote:
        raise ImageLoadError(ref[:80], "remote_refused", "remote images are off (ImageConfig.allow_remote=False)")
    if ref.startswith("data:"):
        if ";base64," not in ref:
            raise ImageLoadError(ref[:80], "remote_failed", "only base64 data: URIs are supported")
        try:
            data = base64.b64decode(ref.split(";base64,", 1)[1], validate=True)
        except (binascii.Error, ValueError) as err:
            raise ImageLoadError(ref[:80], "corrupt", f"bad base64: {err}") from None
    elif ref.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(ref, timeout=config.remote_timeout_s) as response:
                data = response.read(config.max_file_bytes + 1)
        except (OSError, ValueError) as err:
            raise ImageLoadError(ref, "remote_failed", str(err)) from None
    else:
        raise ImageLoadError(ref[:80], "remote_refused", "only http(s) URLs and base64 data: URIs can be fetched")
    if len(data) > config.max_file_bytes:
        raise ImageLoadError(ref[:80], "too_large", f"more than max_file_bytes {config.max_file_bytes}")
    return data


def decode_image(data: bytes, ref: str, config: ImageConfig) -> Image.Image:
    """Bytes -> fully decoded RGB image at its source size (steps 2-4 of the module docstring)."""
    try:
        with warnings.catch_warnings():
            # Our max_source_pixels check below is the decision; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        raise ImageLoadError(ref, "too_large", str(err)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(ref, "corrupt", f"{type(err).__name__}: {err}") from None

    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(ref, "corrupt", f"header declares {width}x{height}")
    if width * height > config.max_source_pixels:
        raise ImageLoadError(
            ref, "too_large",
            f"header declares {width}x{height} = {width * height} pixels > max_source_pixels {config.max_source_pixels}",
        )
    try:
        image.load()
    except Exception as err:  # noqa: BLE001 - decoders raise OSError, SyntaxError, zlib.error, struct.error, ...
        reason = "truncated" if "truncated" in str(err).lower() else "corrupt"
        raise ImageLoadError(ref, reason, f"{type(err).__name__}: {err}") from None
    return to_rgb(image)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB copy of `image`; any transparency is composited onto white (qwen_vl_utils.to_rgb's rule)."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.split()[3])
        return background
    return image.convert("RGB")


def load_image(ref: str, root: str | Path, config: ImageConfig = ImageConfig()) -> Image.Image:
    """Load image `ref` (a path relative to dataset `root`, or a URL when allowed) as a sized RGB image.

    Raises ImageLoadError (reason in REASONS) for anything unusable; never returns a partial image."""
    if not isinstance(ref, str) or not ref:
        raise ImageLoadError(str(ref), "missing", "empty image reference")
    data = _read_remote(ref, config) if is_url(ref) else _read_local(ref, root, config)
    image = decode_image(data, ref, config)
    if not config.resize:
        return image
    try:
        size = target_size(*image.size, config)
    except ValueError as err:  # smart_resize refuses aspect ratios > 200
        raise ImageLoadError(ref, "bad_aspect", str(err)) from None
    if size != image.size:
        image = image.resize(size, resample=Image.Resampling.BICUBIC)
    return image


def load_record_images(images: list[str], root: str | Path, config: ImageConfig = ImageConfig()) -> list[Image.Image]:
    """All images of one record, in order (the first failure raises)."""
    return [load_image(ref, root, config) for ref in images]


def dataset_root(records_file: str | Path) -> Path:
    """The dataset root of a records file: the folder that holds it."""
    return Path(os.path.abspath(records_file)).parent
