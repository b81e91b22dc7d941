"""make_idx.py: writes the tiny IDX files tests/test_idx.c reads (run once from
this folder; the outputs are committed). Good files: 3 images of 4 x 5 and
their 3 labels, gzip and plain; bad files: one defect each, named for it."""
import gzip
import struct

IMG = bytes(range(60))            # 3 x 4 x 5, pixel i = i
LAB = bytes([0, 9, 4])


def header(typ, dims):
    return bytes([0, 0, typ, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def gz(name, data):
    with gzip.GzipFile(name, "wb", mtime=0) as f:
        f.write(data)


def plain(name, data):
    with open(name, "wb") as f:
        f.write(data)


good_img = header(8, [3, 4, 5]) + IMG
good_lab = header(8, [3]) + LAB
gz("good-images-idx3-ubyte.gz", good_img)
gz("good-labels-idx1-ubyte.gz", good_lab)
plain("good-images-idx3-ubyte", good_img)
plain("good-labels-idx1-ubyte", good_lab)
gz("bad-magic.gz", b"\x1f\x00\x08\x03" + good_img[4:])
gz("bad-type.gz", header(0x0D, [3, 4, 5]) + IMG)
gz("bad-truncated-data.gz", good_img[:-7])
gz("bad-truncated-header.gz", good_img[:9])
gz("bad-trailing.gz", good_img + b"\x00")
gz("bad-zero-dim.gz", header(8, [0, 4, 5]))
gz("bad-label-range.gz", header(8, [3]) + bytes([0, 10, 4]))
gz("bad-label-count.gz", header(8, [2]) + bytes([0, 1]))
plain("bad-empty", b"")
# a gzip stream cut in the middle (corrupt compressed data)
buf = gzip.compress(good_img, mtime=0)
plain("bad-corrupt.gz", buf[: len(buf) // 2])
