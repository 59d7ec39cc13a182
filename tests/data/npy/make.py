"""Regenerates the .npy files that tests/test_npy.c reads:
/usr/bin/python3 tests/data/npy/make.py (from the repository root)."""
import os
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def path(name):
    return os.path.join(HERE, name)


def write_raw(name, header, data=b""):
    """A v1.0 file with a hand-written header dict, padded like numpy's."""
    header = header.encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    with open(path(name), "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + data)


def write_version(name, arr, version):
    with open(path(name), "wb") as f:
        np.lib.format.write_array(f, arr, version=version)


def main():
    m = (np.arange(6, dtype=np.float32) * 0.5 - 1.0).reshape(2, 3)
    np.save(path("f32_v1.npy"), m)
    np.save(path("vec5.npy"), np.arange(5, dtype=np.float32) + 0.25)
    np.save(path("scalar.npy"), np.array(3.5, dtype=np.float32))
    np.save(path("empty.npy"), np.zeros((0, 4), dtype=np.float32))
    write_version("f32_v2.npy", np.arange(5, dtype=np.float32) - 2.0, (2, 0))
    write_version("f32_v3.npy", m.reshape(1, 2, 3), (3, 0))
    np.save(path("f64.npy"), np.array([[1.5, -2.25], [1e-3, 3.0]], dtype=np.float64))
    np.save(path("f16.npy"), np.array([1.0, -0.5, 65504.0, 2.0 ** -24, np.inf], np.float16))
    np.save(path("big_endian.npy"), np.arange(3, dtype=">f4"))
    np.save(path("fortran.npy"), np.asfortranarray(m))
    np.save(path("int64.npy"), np.arange(3, dtype=np.int64))
    np.save(path("rank7.npy"), np.zeros((1,) * 7, dtype=np.float32))
    with open(path("f32_v1.npy"), "rb") as f:
        whole = f.read()
    with open(path("truncated.npy"), "wb") as f:
        f.write(whole[:-4])
    with open(path("not_npy.npy"), "wb") as f:
        f.write(b"this is not a numpy file\n")
    data = np.array([7.0, 8.0, 9.0], dtype=np.float32).tobytes()
    write_raw("odd_header.npy",
              "{ 'shape' : ( 3 , ) ,'fortran_order':False,  \"descr\":'<f4' , }", data)
    write_raw("missing_key.npy", "{'descr': '<f4', 'shape': (3,)}", data)


if __name__ == "__main__":
    main()
