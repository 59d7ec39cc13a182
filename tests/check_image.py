#!/usr/bin/env python3
"""cnnrun --image against torchvision: the input cnnrun gives a model (--dump-input)
must be what transforms.Resize, CenterCrop, ToTensor and Normalize make of the same
file, within 1/255 of the [0, 1] values, for scikit-learn's sample photos and PNGs
written here (RGB, grey, alpha, palette, odd sizes, smaller than the resize); and
damaged files, unsupported formats and unsuitable models give status 1 and a message.

usage: check_image.py CNNC CNNRUN   (exit 77 when torchvision or the photos are missing)"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

try:
    import numpy as np
    import torch
    from PIL import Image
    from torchvision import transforms as T
    import sklearn.datasets
except ImportError as e:
    print("check_image: skipped: %s (run with /usr/bin/python3)" % e)
    sys.exit(77)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SAMPLES = os.path.join(os.path.dirname(sklearn.datasets.__file__), "images")

cnnc, cnnrun = sys.argv[1], sys.argv[2]
tmp = tempfile.mkdtemp(prefix="check_image.")
failures = []


def compile_model(name, channels, h, w, batch, head=""):
    """A model whose one input is [batch, channels, h, w], returning its channel means
    (or `head` applied to them)."""
    path = os.path.join(tmp, "%s.cnn" % name)
    with open(path, "w") as f:
        f.write("network %s(image: f32[N=1, %d, %d, %d]) {\n  x = flatten(global_avgpool(image))\n"
                "  return %s\n}\n" % (name, channels, h, w, head or "x"))
    so = os.path.join(tmp, "%s.so" % name)
    subprocess.run([cnnc, path, "--batch=%d" % batch, "--random-weights=1", "-o", so],
                   check=True)
    return so


def cnnrun_status(*args):
    r = subprocess.run([cnnrun] + list(args), capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def reference(path, mode, resize, size, mean, std):
    steps = [T.Resize(resize)] if resize else []
    steps += [T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)]
    with Image.open(path) as im:
        return T.Compose(steps)(im.convert(mode)).numpy()


def check_batch(what, so, files, mode, size, resize=256, mean=None, std=None, flags=()):
    mean = mean or (IMAGENET_MEAN if mode == "RGB" else (0.0,))
    std = std or (IMAGENET_STD if mode == "RGB" else (1.0,))
    dump = os.path.join(tmp, "in.npy")
    args = [so, "--dump-input=" + dump] + ["--image=" + f for f in files] + list(flags)
    rc, out = cnnrun_status(*args)
    if rc != 0:
        failures.append("%s: cnnrun %s -> %d\n%s" % (what, " ".join(args), rc, out))
        return
    got = np.load(dump)
    want = np.stack([reference(f, mode, resize, size, mean, std) for f in files])
    if got.shape != want.shape:
        failures.append("%s: shape %s, torchvision %s" % (what, got.shape, want.shape))
        return
    # On the [0, 1] scale: the difference times each channel's std.
    diff = np.abs(got - want) * np.array(std, dtype=np.float32).reshape(1, -1, 1, 1)
    worst = float(diff.max())
    print("%-40s max |diff| %.3g (%d of %d values differ)" %
          (what, worst, int((diff > 0).sum()), diff.size))
    if worst > 1 / 255:
        failures.append("%s: max difference %.4g > 1/255" % (what, worst))


def expect_error(what, msg, *args):
    rc, out = cnnrun_status(*args)
    if rc != 1 or msg not in out or "Sanitizer" in out:
        failures.append("%s: cnnrun %s -> %d, expected 1 and '%s':\n%s" %
                        (what, " ".join(args), rc, msg, out))


def write_png(path, pixels, interlace):
    """PNG written by hand, for what PIL does not write: Adam7 interlacing and 16-bit RGB.
    pixels: [H, W, C] of uint8 or uint16, C 1 to 4."""
    h, w, c = pixels.shape
    depth = 16 if pixels.dtype == np.uint16 else 8
    data = pixels.astype(">u2" if depth == 16 else "u1")

    def rows(a):  # each row after filter type 0 (none)
        return b"".join(b"\0" + a[y].tobytes() for y in range(a.shape[0]))

    passes = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
              (1, 0, 2, 1)] if interlace else [(0, 0, 1, 1)]
    raw = b"".join(rows(data[y0::dy, x0::dx]) for y0, x0, dy, dx in passes
                   if data[y0::dy, x0::dx].size)

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body +
                struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff))

    ihdr = struct.pack(">IIBBBBB", w, h, depth, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, int(interlace))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
                + chunk(b"IEND", b""))


def write_images():
    rng = np.random.default_rng(7)
    files = {}

    def save(name, array, mode, **kw):
        files[name] = os.path.join(tmp, name)
        Image.fromarray(array, mode).save(files[name], **kw)

    # Smooth gradients and noise: interpolation errors show on both.
    def photo(h, w, c):
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                         ((x + y) * 7) % 256, (x * y) % 256], axis=-1)[..., :c]
        noise = rng.integers(0, 64, size=(h, w, c))
        return np.clip(base + noise - 32, 0, 255).astype(np.uint8)

    save("odd.png", photo(301, 257, 3), "RGB")
    save("small.png", photo(97, 130, 3), "RGB")  # upscaled to a short side of 256
    save("wide.png", photo(37, 811, 3), "RGB")
    save("one.png", photo(1, 1, 3), "RGB")
    save("narrow.png", photo(300, 2, 3), "RGB")
    save("grey.png", photo(263, 199, 1)[..., 0], "L")
    save("rgba.png", photo(211, 300, 4), "RGBA")
    for name, pixels, interlace in [
            ("interlaced.png", photo(120, 91, 3), True),
            ("interlaced_la.png", photo(13, 301, 2), True),
            ("rgb16.png", photo(200, 300, 3).astype(np.uint16) * 257 + 3, False)]:
        files[name] = os.path.join(tmp, name)
        write_png(files[name], pixels, interlace)
    Image.open(files["odd.png"]).convert("P", palette=Image.ADAPTIVE).save(
        os.path.join(tmp, "palette.png"))
    files["palette.png"] = os.path.join(tmp, "palette.png")
    save("grey.jpg", photo(250, 333, 1)[..., 0], "L", quality=90)
    save("progressive.jpg", photo(259, 260, 3), "RGB", quality=85, progressive=True)
    return files


def main():
    files = write_images()
    china, flower = os.path.join(SAMPLES, "china.jpg"), os.path.join(SAMPLES, "flower.jpg")
    if not os.path.exists(china):
        print("check_image: skipped: no %s" % china)
        return 77
    rgb2 = compile_model("rgb2", 3, 224, 224, 2)
    rgb1 = compile_model("rgb1", 3, 224, 224, 1)
    odd = compile_model("odd", 3, 199, 117, 1)
    grey = compile_model("grey", 1, 28, 28, 1)
    grey_odd = compile_model("grey_odd", 1, 161, 240, 1)

    check_batch("china.jpg + flower.jpg", rgb2, [china, flower], "RGB", (224, 224))
    for name in ["odd.png", "small.png", "wide.png", "one.png", "narrow.png", "grey.png", "rgba.png", "palette.png",
                 "interlaced.png", "interlaced_la.png", "rgb16.png", "grey.jpg",
                 "progressive.jpg"]:
        check_batch(name + " (RGB 224)", rgb1, [files[name]], "RGB", (224, 224))
    check_batch("china.jpg (RGB 199x117)", odd, [china], "RGB", (199, 117))
    check_batch("odd.png (RGB 199x117, resize 150)", odd, [files["odd.png"]], "RGB", (199, 117),
                resize=150, flags=["--resize=150"])
    check_batch("flower.jpg (no resize)", odd, [flower], "RGB", (199, 117), resize=0,
                flags=["--resize=0"])
    check_batch("mean/std given", rgb1, [files["small.png"]], "RGB", (224, 224),
                mean=(0.5, 0.25, 0.125), std=(0.5, 2.0, 0.3),
                flags=["--mean=0.5,0.25,0.125", "--std=0.5,2,0.3"])
    for name in ["grey.png", "odd.png", "rgba.png", "grey.jpg"]:
        check_batch(name + " (L 28, resize 32)", grey, [files[name]], "L", (28, 28), resize=32,
                    mean=(0.1307,), std=(0.3081,),
                    flags=["--resize=32", "--mean=0.1307", "--std=0.3081"])
    check_batch("china.jpg (L 161x240)", grey_odd, [china], "L", (161, 240))
    # A crop larger than the resized image: zero padding, as CenterCrop pads.
    check_batch("wide.png (L 161x240, resize 100)", grey_odd, [files["wide.png"]], "L",
                (161, 240), resize=100, flags=["--resize=100"])

    # --labels: ImageNet's names by index, a file of names, and counts that do not match.
    names = open(os.path.join(os.path.dirname(__file__), "..", "tools",
                              "imagenet_classes.txt")).read().splitlines()
    net = compile_model("net", 3, 224, 224, 1, head="dense(x, 1000) as fc")
    rc, out = cnnrun_status(net, "--image=" + china, "--top=3", "--labels=imagenet")
    line = [ln for ln in out.splitlines() if "top-3:" in ln]
    if rc != 0 or not line:
        failures.append("--labels=imagenet: %d\n%s" % (rc, out))
    else:
        items = line[0].split("top-3:")[1].split(",")
        for item in items:
            index, rest = item.strip().split(" ", 1)
            if not rest.startswith(names[int(index)] + " ("):
                failures.append("--labels=imagenet: class %s printed as '%s'" % (index, rest))
    labels = os.path.join(tmp, "labels.txt")
    with open(labels, "w") as f:
        f.write("red\r\ngreen\nblue")
    rc, out = cnnrun_status(rgb1, "--image=" + china, "--top=3", "--labels=" + labels)
    if rc != 0 or "(red|green|blue)" in out or not all(c in out for c in ("red", "green", "blue")):
        failures.append("--labels=FILE: %d\n%s" % (rc, out))
    expect_error("labels count", "--labels: 'imagenet' has 1000 names, the output", rgb1,
                 "--image=" + china, "--top=1", "--labels=imagenet")
    expect_error("labels file", "--labels: cannot open", rgb1, "--image=" + china, "--top=1",
                 "--labels=" + os.path.join(tmp, "nowhere.txt"))

    # Errors: status 1 and a message, never a crash.
    with open(china, "rb") as f:
        jpeg = f.read()
    with open(files["odd.png"], "rb") as f:
        png = f.read()
    bad = {"truncated.jpg": jpeg[:len(jpeg) // 2], "header.jpg": jpeg[:200],
           "truncated.png": png[:len(png) // 2], "header.png": png[:30],
           "empty.png": b"", "text.png": b"hello, world\n",
           "crc.png": png[:40] + bytes([png[40] ^ 0xff]) + png[41:],
           "garbage.jpg": jpeg[:2] + b"\xff" + bytes(range(256)) * 4}
    for name, data in bad.items():
        with open(os.path.join(tmp, name), "wb") as f:
            f.write(data)
    expect_error("truncated JPEG", "truncated JPEG file", rgb1,
                 "--image=" + os.path.join(tmp, "truncated.jpg"))
    for name, msg in [("header.jpg", "bad JPEG file"), ("garbage.jpg", "bad JPEG file"),
                      ("truncated.png", "bad PNG file"), ("header.png", "bad PNG file"),
                      ("crc.png", "bad PNG file"), ("empty.png", "is empty"),
                      ("text.png", "is not a JPEG or PNG image")]:
        expect_error(name, "cnnrun: error: '%s'" % os.path.join(tmp, name), rgb1,
                     "--image=" + os.path.join(tmp, name))
        expect_error(name, msg, rgb1, "--image=" + os.path.join(tmp, name))
    gif = os.path.join(tmp, "image.gif")
    Image.open(files["odd.png"]).save(gif)
    cmyk = os.path.join(tmp, "cmyk.jpg")
    Image.new("CMYK", (30, 20), (10, 20, 30, 40)).save(cmyk)
    expect_error("CMYK", "'%s': CMYK JPEG images are not supported" % cmyk, rgb1,
                 "--image=" + cmyk)
    expect_error("GIF", "is not a JPEG or PNG image", rgb1, "--image=" + gif)
    expect_error("missing", "cannot open '%s/none.jpg'" % tmp, rgb1, "--image=%s/none.jpg" % tmp)
    expect_error("count", "1 image for a batch of 2", rgb2, "--image=" + china)
    expect_error("count", "3 images for a batch of 2", rgb2, "--image=" + china,
                 "--image=" + china, "--image=" + china)
    flat = os.path.join(tmp, "flat.cnn")
    with open(flat, "w") as f:
        f.write("network flat(x: f32[N=1, 3, 10]) {\n  return flatten(x)\n}\n")
    subprocess.run([cnnc, flat, "-o", flat + ".so"], check=True)
    expect_error("rank 3", "--image needs an input of shape [N, 1 or 3, H, W]; input 'x' is "
                 "f32[1,3,10]", flat + ".so", "--image=" + china)
    four = compile_model("four", 4, 8, 8, 1)
    expect_error("4 channels", "--image needs an input of shape [N, 1 or 3, H, W]", four,
                 "--image=" + china)
    expect_error("mean count", "--mean and --std take one value for a model of 1 channel", grey,
                 "--image=" + china, "--mean=1,2,3")
    expect_error("--mean", "--mean expects 1 or 3 comma-separated numbers, got '1,2'", rgb1,
                 "--image=" + china, "--mean=1,2")
    expect_error("--std", "--std expects 1 or 3 comma-separated positive numbers, got '1,0,1'",
                 rgb1, "--image=" + china, "--std=1,0,1")
    expect_error("--resize", "--resize expects an integer in [0, 16384]", rgb1,
                 "--image=" + china, "--resize=-3")
    expect_error("--mean alone", "--resize, --mean and --std need --image", rgb1, "--mean=1")
    expect_error("--labels alone", "--labels needs --top", rgb1, "--labels=imagenet")
    expect_error("--image and --input", "--image and --input (or NAME=FILE) cannot be combined",
                 rgb1, "--image=" + china, "--input=x.npy")

    for f in failures:
        print("FAIL:", f)
    print("check_image: %d failure(s)" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
