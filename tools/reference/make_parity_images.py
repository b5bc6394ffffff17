"""Write the image files the CLIP preprocessing parity test decodes.

Every file is derived from a real photo shipped inside the virtualenv
(scikit-image's `skimage/data` and insightface's `insightface/data/images`), so
no download is needed. The set covers what a CLIP service meets in practice and
the corners where a re-implementation of PIL + torchvision usually drifts:

- JPEG: the originals, several qualities and chroma subsamplings (4:4:4, 4:2:2,
  4:2:0), progressive, grayscale, Adobe CMYK, an EXIF orientation tag (which
  PIL ignores on open, as the service does);
- PNG: RGB, RGBA, LA, grayscale, 16-bit grayscale, 16-bit RGB, palette with and
  without transparency;
- WebP (lossy, lossless, lossy with alpha), GIF (with and without a
  transparent index), BMP, TIFF (raw and LZW);
- tiny images (1x1, 3x7, 17x9), a 4000x3000 upscale, a 4032x3024 phone-size
  photo with sensor-like grain, very wide and very tall
  aspect ratios, and sizes whose centre-crop offset is an exact .5 (where
  Python's round() goes to the even neighbour).

Usage: make_parity_images.py [OUT_DIR]   (default models/parity-images)
Prints the written paths, one a line.
"""

from __future__ import annotations

import os
import sys

# Sibling scripts here (any named like a stdlib module) must not shadow the standard library.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def data_dirs() -> tuple[Path, Path]:
    import insightface
    import skimage

    return (
        Path(skimage.__file__).parent / "data",
        Path(insightface.__file__).parent / "data" / "images",
    )


def png16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit PNG written by hand (PIL cannot write 16-bit RGB)."""
    if arr.ndim == 2:
        color_type, channels = 0, 1
    else:
        color_type, channels = 2, arr.shape[2]
    h, w = arr.shape[:2]
    raw = arr.astype(">u2").reshape(h, w * channels).tobytes()
    stride = w * channels * 2
    rows = b"".join(b"\x00" + raw[y * stride : (y + 1) * stride] for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def exif_rotated_jpeg(img: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "models/parity-images")
    out.mkdir(parents=True, exist_ok=True)
    sk, ins = data_dirs()

    astronaut = Image.open(sk / "astronaut.png").convert("RGB")
    coffee = Image.open(sk / "coffee.png").convert("RGB")
    chelsea = Image.open(sk / "chelsea.png").convert("RGB")
    camera = Image.open(sk / "camera.png")  # L
    rocket = Image.open(sk / "rocket.jpg").convert("RGB")
    motorcycle = Image.open(sk / "motorcycle_left.png").convert("RGB")
    t1 = Image.open(ins / "t1.jpg").convert("RGB")

    written: list[Path] = []

    def save(name: str, img: Image.Image, fmt: str, **kw) -> None:
        p = out / name
        img.save(p, fmt, **kw)
        written.append(p)

    def copy(name: str, src: Path) -> None:
        p = out / name
        p.write_bytes(src.read_bytes())
        written.append(p)

    # Originals as shipped.
    copy("orig_astronaut.png", sk / "astronaut.png")
    copy("orig_camera_gray.png", sk / "camera.png")
    copy("orig_rocket.jpg", sk / "rocket.jpg")
    copy("orig_t1.jpg", ins / "t1.jpg")
    copy("orig_tom_hanks_112.png", ins / "Tom_Hanks_54745.png")
    copy("orig_mask_black_progressive.jpg", ins / "mask_black.jpg")
    copy("orig_mask_green_small.jpg", ins / "mask_green.jpg")
    copy("orig_horse_rgba.png", sk / "horse.png")
    copy("orig_hubble.jpg", sk / "hubble_deep_field.jpg")

    # JPEG variants: quality x chroma subsampling (0=4:4:4, 1=4:2:2, 2=4:2:0).
    save("jpeg_coffee_q95_444.jpg", coffee, "JPEG", quality=95, subsampling=0)
    save("jpeg_coffee_q75_420.jpg", coffee, "JPEG", quality=75, subsampling=2)
    save("jpeg_chelsea_q50_422.jpg", chelsea, "JPEG", quality=50, subsampling=1)
    save("jpeg_astronaut_q85_progressive.jpg", astronaut, "JPEG", quality=85, progressive=True)
    save("jpeg_motorcycle_q30.jpg", motorcycle, "JPEG", quality=30)
    # PIL's writer has no 4:4:0; a tall 4:2:2 photo exercises h2v1 upsampling on odd widths.
    save("jpeg_chelsea_tall_422.jpg", chelsea.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=80, subsampling=1)
    save("jpeg_camera_gray.jpg", camera, "JPEG", quality=85)
    save("jpeg_astronaut_cmyk.jpg", astronaut.convert("CMYK"), "JPEG", quality=90)
    p = out / "jpeg_rocket_exif_orient6.jpg"
    p.write_bytes(exif_rotated_jpeg(rocket))
    written.append(p)

    # PNG modes.
    alpha = Image.linear_gradient("L").resize(chelsea.size)
    rgba = chelsea.copy()
    rgba.putalpha(alpha)
    save("png_chelsea_rgba.png", rgba, "PNG")
    la = camera.copy().convert("LA")
    la.putalpha(Image.linear_gradient("L").resize(camera.size).transpose(Image.Transpose.ROTATE_90))
    save("png_camera_la.png", la, "PNG")
    save("png_coffee_palette.png", coffee.quantize(256), "PNG")
    pal = chelsea.quantize(64)
    save("png_chelsea_palette_trns.png", pal, "PNG", transparency=0)
    cam16 = np.asarray(camera, dtype=np.uint16) * 257 + 3
    p = out / "png_camera_gray16.png"
    png16(p, cam16)
    written.append(p)
    ast16 = np.asarray(astronaut, dtype=np.uint16) * 257 + 100
    p = out / "png_astronaut_rgb16.png"
    png16(p, ast16)
    written.append(p)

    # Other containers.
    save("webp_coffee_lossy.webp", coffee, "WEBP", quality=80)
    save("webp_chelsea_lossless.webp", chelsea, "WEBP", lossless=True)
    save("gif_chelsea.gif", chelsea.quantize(128), "GIF")
    save("gif_chelsea_trns.gif", chelsea.quantize(64), "GIF", transparency=3)
    save("webp_chelsea_rgba_lossy.webp", rgba, "WEBP", quality=70)
    save("bmp_rocket.bmp", rocket, "BMP")
    save("tiff_astronaut_raw.tif", astronaut, "TIFF")
    save("tiff_coffee_lzw.tif", coffee, "TIFF", compression="tiff_lzw")

    # Sizes.
    save("size_1x1.png", astronaut.resize((1, 1), Image.Resampling.BOX), "PNG")
    save("size_3x7.png", astronaut.resize((3, 7), Image.Resampling.BOX), "PNG")
    save("size_17x9.png", coffee.resize((17, 9), Image.Resampling.BOX), "PNG")
    save("size_4000x3000_upscale.jpg", coffee.resize((4000, 3000), Image.Resampling.BICUBIC), "JPEG", quality=90)
    # A phone-camera-sized photo with sensor-like grain (the reduced-scale decode's case).
    grain = np.random.default_rng(7).normal(0, 6, (3024, 4032, 3))
    t1_cam = np.asarray(t1.resize((4032, 3024), Image.Resampling.BICUBIC), dtype=np.float64) + grain
    save("size_4032x3024_camera.jpg", Image.fromarray(np.clip(t1_cam, 0, 255).astype(np.uint8)), "JPEG", quality=92)
    save("size_wide_2000x150.png", t1.resize((2000, 150), Image.Resampling.LANCZOS), "PNG")
    save("size_tall_120x1500.jpg", chelsea.resize((120, 1500), Image.Resampling.LANCZOS), "JPEG", quality=88)
    # Long side 225/229/233 after the resize: crop offsets 0.5, 2.5, 4.5 (banker's rounding: 0, 2, 4).
    save("crop_224x225.png", astronaut.crop((0, 0, 224, 225)), "PNG")
    save("crop_458x448.png", coffee.resize((458, 448), Image.Resampling.LANCZOS), "PNG")
    save("crop_233x224.jpg", chelsea.resize((233, 224), Image.Resampling.LANCZOS), "JPEG", quality=92)
    save("crop_300x307.png", motorcycle.resize((300, 307), Image.Resampling.LANCZOS), "PNG")

    for p in written:
        print(p)


if __name__ == "__main__":
    main()
