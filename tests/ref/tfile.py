"""tfile.py: write named arrays for the C tests to read (tests/tfile.h).

Format (little-endian): b"CLTF", u32 count, then per record:
u32 name_len, name (utf-8), u32 dtype (0 float32, 1 int32, 2 float64),
u32 ndim, u32 dims[ndim], raw data (C order).

Every reference script in tests/ref/ writes build/ref/<script name>.bin through
save(); the Makefile runs them with Debian's /usr/bin/python3 before the tests.
"""
import os
import struct
import sys

import numpy as np

_DTYPES = {np.dtype(np.float32): 0, np.dtype(np.int32): 1, np.dtype(np.float64): 2}


def save(path, arrays):
    """arrays: dict name -> array-like (torch tensors are detached to numpy)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(b"CLTF")
        f.write(struct.pack("<I", len(arrays)))
        for name, a in arrays.items():
            if hasattr(a, "detach"):
                a = a.detach().cpu().numpy()
            a = np.ascontiguousarray(np.asarray(a))
            if a.dtype == np.float64 and not name.endswith("@f64"):
                a = a.astype(np.float32)
            if a.dtype.kind in "iub":
                a = a.astype(np.int32)
            if a.ndim == 0:
                a = a.reshape(1)
            nb = name.encode()
            f.write(struct.pack("<I", len(nb)) + nb)
            f.write(struct.pack("<II", _DTYPES[a.dtype], a.ndim))
            f.write(struct.pack("<%dI" % a.ndim, *a.shape))
            f.write(a.tobytes())
    os.replace(tmp, path)


def out_path(script_file):
    """build/ref/<script>.bin, or the directory given as argv[1]."""
    d = sys.argv[1] if len(sys.argv) > 1 else "build/ref"
    return os.path.join(d, os.path.splitext(os.path.basename(script_file))[0] + ".bin")
