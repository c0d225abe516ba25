#!/usr/bin/python3
"""Image-input fixtures for tests/image: real JPEG and PNG files and, for
each, the tensor inferd's preprocessing must make, computed independently
with numpy from the same pixels.

Writes into --out:
  images/*.png|jpg      variants: RGB, gray, CMYK JPEG, progressive JPEG,
                        16-bit PNG (gray and RGB), Adam7-interlaced PNG,
                        palette PNG (with and without tRNS), gray+alpha,
                        RGBA, EXIF orientation 1-8, truncated, corrupt, header
                        bombs (100000x100000 PNG, 65000x65000 JPEG), a chunk
                        declaring 1.6 GB, a zTXt inflating to 1 GiB, a text
                        file named .jpg, an empty file
  expected/*.bin        expected tensors, raw little-endian in the case's dtype
  cases.json            [{name, file, spec, limits?, expected, shape, dtype,
                          atol} or {name, file, spec, limits?, error}]
  digits/               a digits CNN (torch, tools/fixtures/torch_models.py's
                        digits_cnn28) with its preprocessing.json and
                        labels.json, and 100 held-out digits drawn black on
                        white at 56x56 (PNG gray, JPEG RGB), digits.json
                        listing file -> true label

Reference pixels: for PNG the arrays written (lossless, so known without a
decoder); for JPEG what PIL decodes (the same libjpeg-turbo, so the samples
are the decoder's, not a guess), CMYK converted and EXIF orientation applied
with PIL's ImageOps.exif_transpose. The resize, colour and normalisation
follow the definition in src/image/image_input.h, written again here in
numpy. Tolerance: 1e-4 absolute on float outputs scaled to about [-3, 3]
(the C code rounds to float32 once), 1 on integer outputs (a .5 tie may
round differently after float arithmetic in another order).
"""
import argparse
import io
import json
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
RNG = np.random.default_rng(12)
DIGIT_SIZE = 56
DIGIT_COUNT = 100

# ---- a tiny PNG writer: 16-bit RGB and hand-made headers PIL cannot write ----


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width, height, bit_depth, color_type, rows_bytes):
    raw = b"".join(b"\x00" + row for row in rows_bytes)
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def png_interlaced(pixels):
    """8-bit RGB pixels as an Adam7-interlaced PNG (PIL cannot write one)."""
    height, width = pixels.shape[:2]
    raw = b""
    for x0, y0, dx, dy in ADAM7:
        sub = pixels[y0::dy, x0::dx]
        if sub.shape[0] and sub.shape[1]:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 1))
            + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))


# ---- the reference pipeline (src/image/image_input.h, steps 2-7) ----


def over_white(values, alpha):
    v = values.astype(np.int64)
    a = alpha.astype(np.int64)
    return ((v * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def cmyk_to_rgb(cmyk):
    c = cmyk.astype(np.int64)
    k = 255 - c[..., 3:4]
    return (((255 - c[..., :3]) * k + 127) // 255).astype(np.uint8)


def to_color(pixels, color):
    """pixels: HxW (gray) or HxWx3 uint8 -> HxWxC uint8."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if color == "gray":
        if pixels.shape[2] == 1:
            return pixels
        p = pixels.astype(np.int64)
        return ((299 * p[..., 0] + 587 * p[..., 1] + 114 * p[..., 2] + 500) // 1000).astype(np.uint8)[..., None]
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return pixels[..., ::-1] if color == "bgr" else pixels


def axis(n_in, n_out, fit_ratio, crop, content, offset):
    d = np.arange(n_out, dtype=np.float64)
    inside = (d >= offset) & (d < offset + content)
    centre = crop + (d - offset + 0.5) * fit_ratio
    f = np.maximum(centre - 0.5, 0.0)
    low = np.minimum(np.floor(f).astype(np.int64), n_in - 1)
    high = np.minimum(low + 1, n_in - 1)
    weight = np.minimum(f - low, 1.0)
    nearest = np.clip(np.floor(centre).astype(np.int64), 0, n_in - 1)
    return inside, low, high, weight, nearest


def preprocess(pixels, spec):
    color = spec["color"]
    out_h, out_w = spec["size"]
    img = to_color(pixels, color).astype(np.float64)
    in_h, in_w, channels = img.shape
    rx, ry = in_w / out_w, in_h / out_h
    cx = cy = 0.0
    cw, ch, ox, oy = out_w, out_h, 0, 0
    fit = spec.get("fit", "stretch")
    if fit == "center-crop":
        s = min(rx, ry)
        cx, cy = (in_w - out_w * s) / 2, (in_h - out_h * s) / 2
        rx = ry = s
    elif fit == "letterbox":
        s = max(rx, ry)
        cw = min(max(int(np.floor(in_w / s + 0.5)), 1), out_w)
        ch = min(max(int(np.floor(in_h / s + 0.5)), 1), out_h)
        ox, oy = (out_w - cw) // 2, (out_h - ch) // 2
        rx, ry = in_w / cw, in_h / ch
    xin, x0, x1, wx, xn = axis(in_w, out_w, rx, cx, cw, ox)
    yin, y0, y1, wy, yn = axis(in_h, out_h, ry, cy, ch, oy)
    if spec.get("resize", "bilinear") == "nearest":
        out = img[yn][:, xn]
    else:
        wx3 = wx[None, :, None]
        upper = img[y0][:, x0] + (img[y0][:, x1] - img[y0][:, x0]) * wx3
        lower = img[y1][:, x0] + (img[y1][:, x1] - img[y1][:, x0]) * wx3
        out = upper + (lower - upper) * wy[:, None, None]
    mask = (yin[:, None] & xin[None, :])[..., None]
    out = np.where(mask, out, float(spec.get("pad", 0)))
    if spec.get("invert", False):
        out = 255.0 - out
    mean = np.broadcast_to(np.asarray(spec.get("mean", 0.0), dtype=np.float64), (channels,))
    std = np.broadcast_to(np.asarray(spec.get("std", 1.0), dtype=np.float64), (channels,))
    out = (out * spec.get("scale", 1.0) - mean) / std
    layout = spec.get("layout", "NCHW")
    if layout in ("NCHW", "CHW"):
        out = out.transpose(2, 0, 1)
    if layout.startswith("N"):
        out = out[None]
    dtype = spec.get("dtype", "float32")
    if dtype in ("uint8", "int8"):
        info = np.iinfo(dtype)
        rounded = np.sign(out) * np.floor(np.abs(out) + 0.5)
        return np.clip(rounded, info.min, info.max).astype(dtype)
    return out.astype(dtype)


# ---- source pictures ----


def smooth_rgb(h, w):
    """A picture with gradients and edges, so resampling errors show."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1))
    g = (y * 255 // max(h - 1, 1))
    b = ((x // 4 + y // 4) % 2) * 200 + 20
    noise = RNG.integers(0, 30, size=(h, w))
    return np.stack([r, g, (b + noise) % 256], axis=2).astype(np.uint8)


def save_pil(img, path, **kw):
    buf = io.BytesIO()
    img.save(buf, **kw)
    with open(path, "wb") as f:
        f.write(buf.getvalue())
    return buf.getvalue()


def jpeg_pixels(path):
    """What the JPEG decodes to (PIL, libjpeg-turbo), upright, 1 or 3 channels."""
    img = Image.open(path)
    img = ImageOps.exif_transpose(img)
    arr = np.asarray(img)
    if img.mode == "CMYK":
        return cmyk_to_rgb(arr)
    return arr


def exif_block(orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


# ---- writing ----


class Writer:
    def __init__(self, out):
        self.out = out
        self.cases = []
        os.makedirs(os.path.join(out, "images"), exist_ok=True)
        os.makedirs(os.path.join(out, "expected"), exist_ok=True)

    def path(self, name):
        return os.path.join(self.out, "images", name)

    def expect(self, name, file, pixels, spec, limits=None, max_rss_mb=None):
        tensor = preprocess(pixels, spec)
        rel = "expected/%s.bin" % name
        with open(os.path.join(self.out, rel), "wb") as f:
            f.write(np.ascontiguousarray(tensor).tobytes())
        case = {"name": name, "file": "images/" + file, "spec": dict(spec, kind="image"),
                "expected": rel, "shape": list(tensor.shape), "dtype": str(tensor.dtype),
                "atol": 1.0 if tensor.dtype.kind in "ui" else 1e-4}
        if limits:
            case["limits"] = limits
        if max_rss_mb:
            case["max_rss_mb"] = max_rss_mb
        self.cases.append(case)

    def refuse(self, name, file, error, limits=None, max_rss_mb=None):
        case = {"name": name, "file": "images/" + file, "spec": {"kind": "image", "color": "rgb", "size": [8, 8]},
                "error": error}
        if limits:
            case["limits"] = limits
        if max_rss_mb:
            case["max_rss_mb"] = max_rss_mb
        self.cases.append(case)

    def finish(self):
        with open(os.path.join(self.out, "cases.json"), "w") as f:
            json.dump(self.cases, f, indent=1)


IMAGENET = {"scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def png_with_chunk_before_idat(png, kind, data, declared=None):
    """png with one more chunk after IHDR; declared overrides its length field."""
    ihdr_end = 8 + 12 + 13
    length = len(data) if declared is None else declared
    chunk = struct.pack(">I", length) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def memory_bombs(w, rgb):
    """First in cases.json: the test holds the process's peak RSS under a
    bound while decoding them, which later cases would blur."""
    png = open(w.path("rgb.png"), "rb").read()
    # a chunk declaring 1.6 GB in a tiny file: libpng allocates what a chunk
    # declares before reading it (fuzz_image_decode found this)
    with open(w.path("chunk_longer_than_file.png"), "wb") as f:
        f.write(png_with_chunk_before_idat(png, b"zTXt", b"P\x00\x00" + b"x" * 9, declared=1678245900))
    w.refuse("png_chunk_declaring_1_6_gb_is_refused_before_allocating", "chunk_longer_than_file.png",
             "declares 1678245900 bytes", max_rss_mb=300)
    # a real zTXt whose text inflates to 1 GiB: skipped unread, the picture decodes
    packer = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    text = b"".join(packer.compress(zeros) for _ in range(1024)) + packer.flush()
    with open(w.path("ztxt_bomb.png"), "wb") as f:
        f.write(png_with_chunk_before_idat(png, b"zTXt", b"Comment\x00\x00" + text))
    w.expect("png_with_1_gib_ztxt_decodes_without_inflating_it", "ztxt_bomb.png", rgb,
             {"color": "rgb", "size": [37, 53], "resize": "nearest"}, max_rss_mb=300)


def write_variants(w):
    rgb = smooth_rgb(37, 53)
    Image.fromarray(rgb).save(w.path("rgb.png"))
    memory_bombs(w, rgb)
    w.expect("rgb_png_bilinear_stretch_imagenet_nchw", "rgb.png", rgb,
             dict(IMAGENET, color="rgb", size=[16, 16]))
    w.expect("rgb_png_upscale_bilinear", "rgb.png", rgb, {"color": "rgb", "size": [80, 90], "scale": 1 / 255})
    w.expect("rgb_png_same_size_bilinear_nhwc", "rgb.png", rgb, {"color": "rgb", "size": [37, 53], "layout": "NHWC",
                                                               "invert": True, "mean": [1, 2, 3], "std": 2})
    w.expect("rgb_png_center_crop_half_pixel_offset", "rgb.png", rgb,
             {"color": "rgb", "size": [37, 52], "fit": "center-crop"})
    w.expect("rgb_png_bgr_nearest_center_crop_nhwc", "rgb.png", rgb,
             {"color": "bgr", "size": [20, 12], "resize": "nearest", "fit": "center-crop", "layout": "NHWC"})
    w.expect("rgb_png_center_crop_bilinear_wide", "rgb.png", rgb,
             {"color": "rgb", "size": [10, 30], "fit": "center-crop", "scale": 0.5, "mean": 10, "std": 3})
    w.expect("rgb_png_letterbox_pad", "rgb.png", rgb,
             {"color": "rgb", "size": [24, 24], "fit": "letterbox", "pad": 114, "scale": 1 / 255})
    w.expect("rgb_png_letterbox_tall_nearest_hwc", "rgb.png", rgb,
             {"color": "rgb", "size": [40, 9], "fit": "letterbox", "resize": "nearest", "layout": "HWC"})
    w.expect("rgb_png_gray_invert", "rgb.png", rgb,
             {"color": "gray", "size": [28, 28], "invert": True, "scale": 1 / 255})
    w.expect("rgb_png_uint8_chw", "rgb.png", rgb, {"color": "rgb", "size": [13, 17], "dtype": "uint8",
                                                   "layout": "CHW"})
    w.expect("rgb_png_int8_centered", "rgb.png", rgb, {"color": "rgb", "size": [13, 17], "dtype": "int8",
                                                       "mean": 128})
    w.expect("rgb_png_float64", "rgb.png", rgb, {"color": "rgb", "size": [5, 7], "dtype": "float64",
                                                 "scale": 1 / 255})

    with open(w.path("interlaced.png"), "wb") as f:
        f.write(png_interlaced(rgb))
    w.expect("interlaced_png", "interlaced.png", rgb, {"color": "rgb", "size": [37, 53], "resize": "nearest"})

    gray = smooth_rgb(30, 22)[..., 1]
    Image.fromarray(gray, "L").save(w.path("gray.png"))
    w.expect("gray_png_to_rgb", "gray.png", gray, {"color": "rgb", "size": [10, 10], "scale": 1 / 255})
    w.expect("gray_png_gray", "gray.png", gray, {"color": "gray", "size": [12, 9]})

    save_pil(Image.fromarray(rgb), w.path("rgb.jpg"), format="JPEG", quality=90)
    w.expect("rgb_jpeg", "rgb.jpg", jpeg_pixels(w.path("rgb.jpg")), dict(IMAGENET, color="rgb", size=[16, 16]))
    w.expect("rgb_jpeg_gray", "rgb.jpg", jpeg_pixels(w.path("rgb.jpg")),
             {"color": "gray", "size": [16, 16], "scale": 1 / 255})
    # stray bytes before a marker (cameras write them): libjpeg only warns, the pixels are intact
    jpeg = open(w.path("rgb.jpg"), "rb").read()
    sof = jpeg.find(b"\xff\xc0")
    with open(w.path("stray_bytes.jpg"), "wb") as f:
        f.write(jpeg[:sof] + b"\x00\x11\x22" + jpeg[sof:])
    w.expect("jpeg_stray_bytes_before_a_marker", "stray_bytes.jpg", jpeg_pixels(w.path("rgb.jpg")),
             {"color": "rgb", "size": [16, 16]})
    save_pil(Image.fromarray(rgb), w.path("progressive.jpg"), format="JPEG", quality=80, progressive=True)
    w.expect("progressive_jpeg", "progressive.jpg", jpeg_pixels(w.path("progressive.jpg")),
             {"color": "rgb", "size": [16, 16]})
    save_pil(Image.fromarray(gray, "L"), w.path("gray.jpg"), format="JPEG", quality=90)
    w.expect("gray_jpeg", "gray.jpg", jpeg_pixels(w.path("gray.jpg")), {"color": "rgb", "size": [16, 16]})
    cmyk = np.concatenate([255 - rgb, RNG.integers(0, 60, size=rgb.shape[:2] + (1,), dtype=np.uint8)], axis=2)
    save_pil(Image.fromarray(cmyk, "CMYK"), w.path("cmyk.jpg"), format="JPEG", quality=95)
    assert Image.open(w.path("cmyk.jpg")).mode == "CMYK"
    w.expect("cmyk_jpeg", "cmyk.jpg", jpeg_pixels(w.path("cmyk.jpg")), {"color": "rgb", "size": [16, 16]})

    rgb16 = (rgb.astype(np.uint16) * 257 + RNG.integers(0, 257, size=rgb.shape)).astype(">u2")
    with open(w.path("rgb16.png"), "wb") as f:
        f.write(png_bytes(53, 37, 16, 2, [row.tobytes() for row in rgb16]))
    w.expect("rgb16_png_high_byte", "rgb16.png", (rgb16.astype(np.uint16) >> 8).astype(np.uint8),
             {"color": "rgb", "size": [16, 16]})
    gray16 = (gray.astype(np.uint16) * 257).astype(">u2")
    with open(w.path("gray16.png"), "wb") as f:
        f.write(png_bytes(22, 30, 16, 0, [row.tobytes() for row in gray16]))
    w.expect("gray16_png", "gray16.png", gray, {"color": "gray", "size": [15, 11]})

    palette_colors = RNG.integers(0, 256, size=(16, 3), dtype=np.uint8)
    indices = RNG.integers(0, 16, size=(25, 31), dtype=np.uint8)
    pal = Image.fromarray(indices, "P")
    pal.putpalette(palette_colors.flatten().tolist())
    pal.save(w.path("palette.png"))
    w.expect("palette_png", "palette.png", palette_colors[indices], {"color": "rgb", "size": [25, 31],
                                                                      "resize": "nearest"})
    alphas = RNG.integers(0, 256, size=16, dtype=np.uint8)
    pal.save(w.path("palette_trns.png"), transparency=alphas.tobytes())
    w.expect("palette_trns_png_over_white", "palette_trns.png",
             over_white(palette_colors[indices], alphas[indices][..., None]),
             {"color": "rgb", "size": [12, 14]})
    alpha = RNG.integers(0, 256, size=gray.shape, dtype=np.uint8)
    Image.fromarray(np.stack([gray, alpha], axis=2), "LA").save(w.path("gray_alpha.png"))
    w.expect("gray_alpha_png_over_white", "gray_alpha.png", over_white(gray, alpha),
             {"color": "gray", "size": [30, 22], "resize": "nearest"})
    alpha_rgb = RNG.integers(0, 256, size=rgb.shape[:2], dtype=np.uint8)
    Image.fromarray(np.concatenate([rgb, alpha_rgb[..., None]], axis=2), "RGBA").save(w.path("rgba.png"))
    w.expect("rgba_png_over_white", "rgba.png", over_white(rgb, alpha_rgb[..., None]),
             {"color": "rgb", "size": [16, 16]})

    # EXIF orientation: stored 24 wide and 16 high; upright is 16x24 for 5-8
    stored = smooth_rgb(16, 24)
    for orientation in range(1, 9):
        name = "exif_%d.jpg" % orientation
        save_pil(Image.fromarray(stored), w.path(name), format="JPEG", quality=95, exif=exif_block(orientation))
        upright = jpeg_pixels(w.path(name))
        assert upright.shape[:2] == ((16, 24) if orientation < 5 else (24, 16))
        w.expect("exif_orientation_%d" % orientation, name, upright,
                 {"color": "rgb", "size": list(upright.shape[:2]), "resize": "nearest"})

    # refusals
    jpeg = open(w.path("rgb.jpg"), "rb").read()
    png = open(w.path("rgb.png"), "rb").read()
    with open(w.path("truncated.jpg"), "wb") as f:
        f.write(jpeg[:len(jpeg) * 2 // 3])
    w.refuse("truncated_jpeg", "truncated.jpg", "corrupt or truncated data")
    with open(w.path("truncated.png"), "wb") as f:
        f.write(png[:len(png) * 2 // 3])
    w.refuse("truncated_png", "truncated.png", "not a valid PNG")
    with open(w.path("no_iend.png"), "wb") as f:
        f.write(png[:-12])
    w.refuse("png_without_end_chunk", "no_iend.png", "not a valid PNG")
    broken = bytearray(jpeg)
    sos = broken.find(b"\xff\xda")
    for i in range(sos + 40, len(broken) - 2, 7):
        broken[i] = 0xff if broken[i + 1] != 0xd9 else broken[i]
    with open(w.path("corrupt.jpg"), "wb") as f:
        f.write(bytes(broken))
    w.refuse("corrupt_jpeg", "corrupt.jpg", "not a valid JPEG")
    broken = bytearray(png)
    broken[40] ^= 0xff  # inside IDAT: its CRC no longer matches
    with open(w.path("corrupt.png"), "wb") as f:
        f.write(bytes(broken))
    w.refuse("corrupt_png_crc", "corrupt.png", "not a valid PNG")
    # a PNG bomb: a 100000 x 100000 header over a few bytes of data
    with open(w.path("bomb.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
                + _chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + _chunk(b"IEND", b""))
    w.refuse("png_bomb_header", "bomb.png", "announces 100000x100000 pixels")
    sof = jpeg.find(b"\xff\xc0")
    bomb = bytearray(jpeg)
    struct.pack_into(">HH", bomb, sof + 5, 65000, 65000)
    with open(w.path("bomb.jpg"), "wb") as f:
        f.write(bytes(bomb))
    w.refuse("jpeg_bomb_header", "bomb.jpg", "announces 65000x65000 pixels")
    w.refuse("pixel_limit_is_the_callers", "rgb.png", "announces 53x37 pixels", limits={"max_pixels": 1000})
    w.refuse("encoded_size_limit", "rgb.jpg", "more than the limit of 100 bytes",
             limits={"max_encoded_bytes": 100})
    with open(w.path("text.jpg"), "wb") as f:
        f.write(b"this is a text file named .jpg\n")
    w.refuse("text_named_jpg", "text.jpg", "not a JPEG or PNG")
    open(w.path("empty.png"), "wb").close()
    w.refuse("empty_file", "empty.png", "empty")


def write_digits(out):
    sys.path.insert(0, HERE)
    import torch
    import torch.nn.functional as F
    from fixtures import torch_models
    model, _, meta = torch_models.digits_cnn28()
    directory = os.path.join(out, "digits")
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "model.onnx"), "wb") as f:
        f.write(model.SerializeToString())
    preprocessing = {"input": {"kind": "image", "color": "gray", "size": [28, 28], "resize": "bilinear",
                               "layout": "NCHW", "dtype": "float32", "invert": True, "scale": 1 / 255}}
    with open(os.path.join(directory, "preprocessing.json"), "w") as f:
        json.dump(preprocessing, f, indent=1)
    labels = {str(i): "digit %d" % i for i in range(10)}
    with open(os.path.join(directory, "labels.json"), "w") as f:
        json.dump(labels, f, indent=1)
    _, x_test, _, y_test = torch_models._digits()
    images = torch.from_numpy(x_test[:DIGIT_COUNT].reshape(-1, 1, 8, 8))
    big = F.interpolate(images, size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False).numpy()
    ink = np.clip(np.rint(big[:, 0] * 255), 0, 255).astype(np.uint8)
    listing = {}
    for i, (picture, label) in enumerate(zip(255 - ink, y_test[:DIGIT_COUNT])):
        if i % 2 == 0:
            name = "digit_%03d.png" % i
            Image.fromarray(picture, "L").save(os.path.join(directory, name))
        else:
            name = "digit_%03d.jpg" % i
            Image.fromarray(np.repeat(picture[..., None], 3, axis=2)).save(
                os.path.join(directory, name), format="JPEG", quality=92)
        listing[name] = int(label)
    with open(os.path.join(directory, "digits.json"), "w") as f:
        json.dump({"held_out_accuracy_of_the_model": meta["held_out_accuracy"], "digits": listing}, f, indent=1)


def write_fuzz_seeds(directory):
    """Small files of every kind the decoders handle, for fuzz/seeds/image_decode."""
    os.makedirs(directory, exist_ok=True)
    rgb = smooth_rgb(9, 13)
    gray = rgb[..., 1]

    def put(name, data):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)

    put("rgb.png", save_pil(Image.fromarray(rgb), os.devnull, format="PNG"))
    put("interlaced.png", png_interlaced(rgb))
    put("gray_alpha.png", save_pil(Image.fromarray(np.stack([gray, 255 - gray], axis=2), "LA"), os.devnull,
                                   format="PNG"))
    pal = Image.fromarray((gray // 64).astype(np.uint8), "P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    put("palette_trns.png", save_pil(pal, os.devnull, format="PNG", transparency=b"\x00\x80\xff\xff"))
    put("bits1.png", save_pil(Image.fromarray(gray > 100), os.devnull, format="PNG"))
    put("rgb16.png", png_bytes(13, 9, 16, 2, [row.tobytes() for row in (rgb.astype(">u2") * 257)]))
    put("rgb.jpg", save_pil(Image.fromarray(rgb), os.devnull, format="JPEG", quality=80))
    put("gray.jpg", save_pil(Image.fromarray(gray, "L"), os.devnull, format="JPEG", quality=80))
    put("progressive.jpg", save_pil(Image.fromarray(rgb), os.devnull, format="JPEG", progressive=True))
    put("cmyk.jpg", save_pil(Image.fromarray(np.concatenate([rgb, gray[..., None]], axis=2), "CMYK"),
                             os.devnull, format="JPEG"))
    put("exif6.jpg", save_pil(Image.fromarray(rgb), os.devnull, format="JPEG", exif=exif_block(6)))
    put("base64.txt", b"data:image/png;base64,aW5mZXJk\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="write the test fixtures here")
    parser.add_argument("--no-digits", action="store_true", help="skip the digits CNN (needs torch)")
    parser.add_argument("--fuzz-seeds", help="write small seed files for fuzz_image_decode here")
    args = parser.parse_args()
    if args.fuzz_seeds:
        write_fuzz_seeds(args.fuzz_seeds)
        if not args.out:
            return 0
    if not args.out:
        parser.error("give --out DIR and/or --fuzz-seeds DIR")
    w = Writer(args.out)
    write_variants(w)
    w.finish()
    if not args.no_digits:
        write_digits(args.out)
    print("wrote %d image cases%s under %s" % (len(w.cases), "" if args.no_digits else " and the digits set",
                                              args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
