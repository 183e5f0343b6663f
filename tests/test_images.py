"""The one image loader: root-relative paths, refusals, pixel limits, RGB, smart_resize (real PIL files)."""

from __future__ import annotations

import base64
import io
import os
import random
import struct
import zlib

import pytest
from PIL import Image

from lmmr1.data.images import REASONS, ImageConfig, ImageLoadError, load_image, resolve_image_path


def noise_image(width: int, height: int, seed: int = 0) -> Image.Image:
    return Image.frombytes("RGB", (width, height), random.Random(seed).randbytes(width * height * 3))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares width x height, with no pixel data: a decompression-bomb header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def reason_of(ref: str, root, config: ImageConfig = ImageConfig()) -> str:
    with pytest.raises(ImageLoadError) as err:
        load_image(ref, root, config)
    assert err.value.reason in REASONS
    return err.value.reason


def test_good_png_is_rgb_and_smart_resized(tmp_path):
    Image.new("RGB", (100, 50), (10, 20, 30)).save(tmp_path / "a.png")
    image = load_image("a.png", tmp_path)
    # smart_resize(h=50, w=100, factor=28): round(50/28)=2 -> 56, round(100/28)=4 -> 112;
    # 56 x 112 = 6272 lies in [3136, 12845056], so (w, h) = (112, 56).
    assert (image.mode, image.size) == ("RGB", (112, 56))
    assert image.getpixel((50, 20)) == (10, 20, 30)
    assert load_image("a.png", tmp_path, ImageConfig(resize=False)).size == (100, 50)


def test_small_image_is_scaled_up_to_min_pixels(tmp_path):
    Image.new("RGB", (20, 10)).save(tmp_path / "s.png")
    # h_bar = w_bar = 28 -> 784 < 3136, so beta = sqrt(3136 / 200) = 3.9598;
    # h = ceil(10 * 3.9598 / 28) * 28 = ceil(1.414) * 28 = 56; w = ceil(20 * 3.9598 / 28) * 28 = ceil(2.828) * 28 = 84
    assert load_image("s.png", tmp_path).size == (84, 56)


def test_large_image_is_scaled_down_to_max_pixels(tmp_path):
    noise_image(2000, 1500).save(tmp_path / "big.jpg", quality=50)
    config = ImageConfig(max_pixels=250_000)
    # rounded 1512 x 1988 = 3,005,856 > 250,000, so beta = sqrt(2000 * 1500 / 250,000) = sqrt(12) = 3.4641;
    # h = floor(1500 / 3.4641 / 28) * 28 = 15 * 28 = 420; w = floor(2000 / 3.4641 / 28) * 28 = 20 * 28 = 560
    image = load_image("big.jpg", tmp_path, config)
    assert image.size == (560, 420) and 560 * 420 <= config.max_pixels


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "L", "CMYK"])
def test_every_mode_becomes_rgb_and_transparency_becomes_white(tmp_path, mode):
    image = Image.new("RGBA", (56, 56), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 255, 0))  # fully transparent pixel
    converted = image.convert(mode) if mode not in ("P",) else image.convert("P")
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    (tmp_path / "m.img").write_bytes(encoded(converted, fmt))
    loaded = load_image("m.img", tmp_path)
    assert loaded.mode == "RGB" and loaded.size == (56, 56)
    if mode in ("RGBA", "LA"):
        assert loaded.getpixel((0, 0)) == (255, 255, 255)  # composited onto white


def test_corrupt_png(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    assert reason_of("bad.png", tmp_path) == "corrupt"
    (tmp_path / "text.png").write_text("hello")
    assert reason_of("text.png", tmp_path) == "corrupt"


def test_truncated_jpeg_and_png(tmp_path):
    image = noise_image(200, 200)
    for name, fmt in (("cut.jpg", "JPEG"), ("cut.png", "PNG")):
        data = encoded(image, fmt)
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        assert reason_of(name, tmp_path) == "truncated"


def test_missing_file_and_directory(tmp_path):
    assert reason_of("nope.png", tmp_path) == "missing"
    (tmp_path / "dir.png").mkdir()
    assert reason_of("dir.png", tmp_path) == "missing"


def test_paths_escaping_the_root_are_refused(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    Image.new("RGB", (28, 28)).save(tmp_path / "outside.png")
    assert reason_of("../../etc/passwd", root) == "outside_root"
    assert reason_of("../outside.png", root) == "outside_root"
    assert reason_of(str(tmp_path / "outside.png"), root) == "outside_root"  # absolute, elsewhere
    os.symlink(tmp_path / "outside.png", root / "link.png")
    assert reason_of("link.png", root) == "outside_root"  # a symlink pointing out
    Image.new("RGB", (28, 28)).save(root / "in.png")
    assert resolve_image_path("sub/../in.png", root) == (root / "in.png").resolve()


def test_decompression_bomb_headers_are_refused_before_decoding(tmp_path):
    # 20000 x 20000 = 400 M pixels: over Pillow's own hard limit (2 x 89.5 M) and ours.
    (tmp_path / "bomb.png").write_bytes(png_header_only(20000, 20000))
    assert reason_of("bomb.png", tmp_path) == "too_large"
    # 8000 x 8000 = 64 M pixels: under Pillow's limit, over our default max_source_pixels (50 M).
    (tmp_path / "big.png").write_bytes(png_header_only(8000, 8000))
    with pytest.raises(ImageLoadError, match="8000x8000 = 64000000 pixels > max_source_pixels 50000000"):
        load_image("big.png", tmp_path)
    # The same file with a raised limit gets past the pixel check and fails as what it is: no pixel data.
    assert reason_of("big.png", tmp_path, ImageConfig(max_source_pixels=70_000_000)) == "corrupt"


def test_file_byte_limit(tmp_path):
    Image.new("RGB", (56, 56)).save(tmp_path / "a.png")
    assert reason_of("a.png", tmp_path, ImageConfig(max_file_bytes=10)) == "too_large"


def test_extreme_aspect_ratio_is_refused(tmp_path):
    Image.new("RGB", (6000, 20)).save(tmp_path / "strip.png")  # 300:1 > smart_resize's 200:1
    assert reason_of("strip.png", tmp_path) == "bad_aspect"


def test_urls_are_refused_unless_enabled(tmp_path):
    assert reason_of("https://example.com/cat.png", tmp_path) == "remote_refused"
    assert reason_of("file:///etc/passwd", tmp_path) == "remote_refused"
    uri = "data:image/png;base64," + base64.b64encode(encoded(Image.new("RGB", (56, 28), (1, 2, 3)), "PNG")).decode()
    assert reason_of(uri, tmp_path) == "remote_refused"
    image = load_image(uri, tmp_path, ImageConfig(allow_remote=True))  # no network needed for data: URIs
    # 56 x 28 = 1568 < 3136: beta = sqrt(2); h = ceil(28 * 1.414 / 28) * 28 = 56, w = ceil(56 * 1.414 / 28) * 28 = 84
    assert image.size == (84, 56) and image.getpixel((0, 0)) == (1, 2, 3)
    assert reason_of("file:///etc/passwd", tmp_path, ImageConfig(allow_remote=True)) == "remote_refused"


def test_config_rejects_inverted_bounds():
    with pytest.raises(ValueError, match="min_pixels <= max_pixels"):
        ImageConfig(min_pixels=10_000, max_pixels=100)


def test_loader_output_gives_the_processor_the_same_image_tokens(tmp_path, tiny_model_dir):
    """Rollout and training agree: the processor keeps our size, and sizes the raw image identically."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    config = ImageConfig.from_processor(processor)
    image_processor = processor.image_processor
    assert (config.min_pixels, config.max_pixels, config.patch_factor) == (
        image_processor.size["shortest_edge"], image_processor.size["longest_edge"],
        image_processor.patch_size * image_processor.merge_size,
    )
    for i, (w, h) in enumerate([(640, 480), (37, 501), (1000, 90)]):
        noise_image(w, h, seed=i).save(tmp_path / f"{i}.png")
        ours = load_image(f"{i}.png", tmp_path, config)
        grid_ours = processor.image_processor(images=[ours], return_tensors="pt")["image_grid_thw"][0].tolist()
        grid_raw = processor.image_processor(images=[Image.open(tmp_path / f"{i}.png")],
                                             return_tensors="pt")["image_grid_thw"][0].tolist()
        # grid = [t, h / 14, w / 14] of the size the processor resized to: ours is already a fixed point.
        assert grid_ours == [1, ours.size[1] // 14, ours.size[0] // 14]
        assert grid_raw == grid_ours
