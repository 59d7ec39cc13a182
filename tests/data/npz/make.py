"""Regenerates the .npz files that tests/test_npz.c reads and that seed
tests/fuzz/corpus/npz: /usr/bin/python3 tests/data/npz/make.py (from the repository root)."""
import io
import os
import shutil
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "..", "fuzz", "corpus", "npz")


def path(name):
    return os.path.join(HERE, name)


def npy_bytes(arr):
    f = io.BytesIO()
    np.save(f, arr)
    return f.getvalue()


def main():
    x = (np.arange(24, dtype=np.float32) * 0.25 - 3.0).reshape(4, 1, 2, 3)
    y = np.array([3, 0, 9, 1], dtype=np.int64)
    np.savez(path("stored.npz"), x=x, y=y)
    np.savez_compressed(path("compressed.npz"), x=x, y=y)
    np.savez(path("converted.npz"), x=x.astype(np.float64), y=y.astype(np.uint8),
             h=np.array([1.0, -0.5, 65504.0], np.float16), i=np.array([-7, 2], np.int32))
    np.savez(path("targets.npz"), x=x, y=np.array([[0.5, -1.0]] * 4, np.float32))
    np.savez(path("no_y.npz"), x=x)
    np.savez(path("big_endian.npz"), x=x.astype(">f4"), y=y)
    np.savez(path("fortran.npz"), x=np.asfortranarray(x.reshape(4, 6)), y=y)
    np.savez(path("strings.npz"), x=x, y=np.array(["a", "b", "c", "d"]))
    np.savez(path("uint64.npz"), x=x, y=y.astype(np.uint64))
    # A member cut short inside the archive, one whose data is damaged (its CRC
    # fails), and files that are no zip at all or only its beginning.
    with zipfile.ZipFile(path("short_member.npz"), "w") as z:
        z.writestr("x.npy", npy_bytes(x)[:-8])
        z.writestr("y.npy", npy_bytes(y))
    data = bytearray(open(path("stored.npz"), "rb").read())
    at = data.find(npy_bytes(x)[-16:])
    data[at] ^= 0xFF
    open(path("bad_crc.npz"), "wb").write(bytes(data))
    open(path("not_zip.npz"), "wb").write(b"this is not a zip archive\n")
    open(path("truncated.npz"), "wb").write(open(path("stored.npz"), "rb").read()[:300])
    os.makedirs(CORPUS, exist_ok=True)
    for name in ("stored", "compressed", "converted", "targets", "short_member"):
        shutil.copy(path(name + ".npz"), os.path.join(CORPUS, name + ".npz"))


if __name__ == "__main__":
    main()
