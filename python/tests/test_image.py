"""cnnc.preprocess_image against torchvision's pipeline and against `cnnrun --image`."""

import os
import subprocess

import numpy as np
import pytest
from PIL import Image

import cnnc

sklearn_datasets = pytest.importorskip("sklearn.datasets")
PHOTOS = [os.path.join(os.path.dirname(sklearn_datasets.__file__), "images", f)
          for f in ("china.jpg", "flower.jpg")]


def torchvision_batch(paths, resize, crop, mean, std, mode):
    T = pytest.importorskip("torchvision.transforms")
    steps = ([T.Resize(resize)] if resize else []) + [T.CenterCrop(crop), T.ToTensor(),
                                                     T.Normalize(mean, std)]
    tf = T.Compose(steps)
    return np.stack([tf(Image.open(p).convert(mode)).numpy() for p in paths])


def test_rgb_photos_as_torchvision():
    x = cnnc.preprocess_image(PHOTOS)
    assert x.shape == (2, 3, 224, 224) and x.dtype == np.float32 and x.flags.c_contiguous
    ref = torchvision_batch(PHOTOS, 256, 224, cnnc._image.IMAGENET_MEAN,
                            cnnc._image.IMAGENET_STD, "RGB")
    assert np.abs(x - ref).max() <= 1 / 255


def test_small_grey_png_padded(tmp_path):
    png = str(tmp_path / "small.png")
    Image.fromarray((np.arange(30 * 17) % 251).astype(np.uint8).reshape(30, 17)).save(png)
    x = cnnc.preprocess_image(png, size=(40, 40), resize=0, channels=1)
    ref = torchvision_batch([png], 0, (40, 40), (0.0,), (1.0,), "L")
    assert x.shape == (1, 1, 40, 40)
    assert np.abs(x - ref).max() <= 1 / 255


def test_same_as_cnnrun(mnist_path, tmp_path):
    """The digits model's input [1, 1, 28, 28]: the photo in grey, as cnnrun makes it."""
    cnnrun = os.path.join(os.path.dirname(cnnc.find_cnnc()), "cnnrun")
    if not os.access(cnnrun, os.X_OK):
        pytest.skip("no cnnrun next to %s" % cnnc.find_cnnc())
    dump = str(tmp_path / "in.npy")
    subprocess.run([cnnrun, mnist_path, "--image=" + PHOTOS[1], "--dump-input=" + dump],
                   check=True, stdout=subprocess.DEVNULL)
    x = cnnc.preprocess_image(PHOTOS[1], size=28, channels=1)
    assert np.abs(x - np.load(dump)).max() <= 1 / 255


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        cnnc.preprocess_image(PHOTOS[0], channels=4)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(Exception):
        cnnc.preprocess_image(str(bad))
