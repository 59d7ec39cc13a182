"""Images as a classifier's input, preprocessed as `cnnrun --image` does and as
torchvision's Resize(resize), CenterCrop(size), ToTensor(), Normalize(mean, std) does on a
PIL image (decoded by Pillow here, by libjpeg-turbo and libpng in cnnrun)."""

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _resize_short(img, short):
    """torchvision's Resize(int): the short side to `short`, the long one in proportion
    (rounded down), Pillow's antialiased bilinear filter."""
    from PIL import Image
    w, h = img.size
    if min(w, h) == short:
        return img
    if w <= h:
        size = (short, int(short * h / w))
    else:
        size = (int(short * w / h), short)
    return img.resize(size, Image.BILINEAR)


def _center_crop(a, th, tw):
    """torchvision's CenterCrop on an [H, W, C] array: zero padding first when the
    crop is larger, then the window at round((h - th) / 2), round((w - tw) / 2)."""
    h, w = a.shape[:2]
    if th > h or tw > w:
        top, left = (th - h) // 2 if th > h else 0, (tw - w) // 2 if tw > w else 0
        bottom, right = (th - h + 1) // 2 if th > h else 0, (tw - w + 1) // 2 if tw > w else 0
        a = np.pad(a, ((top, bottom), (left, right), (0, 0)))
        h, w = a.shape[:2]
    y, x = int(round((h - th) / 2.0)), int(round((w - tw) / 2.0))
    return a[y:y + th, x:x + tw]


def preprocess_image(paths, size=(224, 224), resize=256, mean=None, std=None, channels=3):
    """One image file (or a list of them) as a float32 array [N, channels, H, W] for a
    model whose input is that shape: RGB (channels 3) or luminance (1), the short side
    resized to `resize` (0: not resized), center-cropped to `size` (an int or (H, W)),
    scaled to [0, 1] and normalized with `mean` and `std` (default: ImageNet's for 3
    channels, 0 and 1 for one). The same values as `cnnrun --image`."""
    from PIL import Image
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        paths = [paths]
    if channels not in (1, 3):
        raise ValueError("channels must be 1 or 3, got %r" % (channels,))
    th, tw = (size, size) if isinstance(size, int) else size
    mean = (IMAGENET_MEAN if channels == 3 else (0.0,)) if mean is None else mean
    std = (IMAGENET_STD if channels == 3 else (1.0,)) if std is None else std
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    out = []
    for p in paths:
        with Image.open(p) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            if resize:
                img = _resize_short(img, resize)
            a = np.asarray(img, np.uint8)
        a = _center_crop(a.reshape(a.shape[0], a.shape[1], -1), th, tw)
        x = a.transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        out.append((x - m) / s)
    return np.ascontiguousarray(np.stack(out))
