"""ckpt_format.py: an independent reader (and writer) of cliplab's checkpoint
and resume files, written from their documented layout (src/train/checkpoint.h,
the top comment of src/train/resume.c), not from the C code, with Python's zlib for the CRC-32.

  ckpt_format.py read FILE      parse a checkpoint (CLCK) or a resume file (CLRS)
                                and print every field, one per line:
                                "name value ..." (floats as Python repr: exact;
                                integers in decimal; bytes in hex). Exits 1
                                with a message when the file does not follow
                                the documented layout (a field missing or extra
                                bytes left over, a wrong length or CRC).
  ckpt_format.py golden FILE    write a checkpoint for tests/test_checkpoint.c's
                                fixture (groups g0 4x3+3, g1 2x3+3, clip.grad =
                                zclip with its default 25-step warm-up) from a
                                pattern the C test knows by heart.

The C tests compare what this script reads with the trainer's fields, and what
the trainer reads from the golden file with the pattern, so a field dropped or
reordered in both the writer and the reader fails a test.
"""
import struct
import sys
import zlib

# ClipMethod values ([clip] grad choices, in order): what each keeps between steps
METHODS = ["none", "global_norm", "value", "norm", "agc", "zclip", "adagc", "auto"]


class Bad(Exception):
    pass


class Reader:
    def __init__(self, data, what):
        self.d, self.p, self.what = data, 0, what

    def take(self, n):
        if n < 0 or self.p + n > len(self.d):
            raise Bad("%s: wants %d bytes at offset %d, only %d left" %
                      (self.what, n, self.p, len(self.d) - self.p))
        b = self.d[self.p:self.p + n]
        self.p += n
        return b

    def un(self, fmt):
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size))

    def one(self, fmt):
        return self.un(fmt)[0]

    def left(self):
        return len(self.d) - self.p


def emit(out, name, *vals):
    out.append(name + " " + " ".join(repr(float(v)) if isinstance(v, float) else str(v) for v in vals))


def framed(data, magic, version, what):
    """The 20-byte header shared by both formats: magic, u32 version, u64
    payload bytes, u32 zlib CRC-32 of the payload. Returns (header dict, payload)."""
    if len(data) < 20 or data[:4] != magic:
        raise Bad("%s: no %s magic" % (what, magic.decode()))
    ver, plen, crc = struct.unpack("<IQI", data[4:20])
    payload = data[20:]
    if ver != version:
        raise Bad("%s: version %d, the documented layout is version %d" % (what, ver, version))
    if plen != len(payload):
        raise Bad("%s: header says %d payload bytes, file has %d" % (what, plen, len(payload)))
    want = zlib.crc32(payload) & 0xFFFFFFFF
    if crc != want:
        raise Bad("%s: header CRC %08x, zlib.crc32 of the payload %08x" % (what, crc, want))
    return {"version": ver, "length": plen, "crc": crc, "zlib_crc": want}, payload


def info(r, out, name):
    emit(out, name, *r.un("4d2i"))  # norm, post_norm, threshold, coef; clipped, warmup


def clipper(r, out, pre):
    if r.take(4) != b"CLPR":
        raise Bad("%s: no CLPR magic" % pre)
    method, nsel = r.un("2i")
    if not 0 <= method < len(METHODS):
        raise Bad("%s: method %d" % (pre, method))
    emit(out, pre + ".method", METHODS[method])
    emit(out, pre + ".nsel", nsel)
    m = METHODS[method]
    if m == "zclip":
        cap, nbuf, initialized = r.un("3i")
        emit(out, pre + ".cap", cap)
        emit(out, pre + ".nbuf", nbuf)
        emit(out, pre + ".initialized", initialized)
        emit(out, pre + ".steps", r.one("q"))
        emit(out, pre + ".mean_var_z_clipval", *r.un("4d"))
        info(r, out, pre + ".last")
        if not 0 <= nbuf <= cap:
            raise Bad("%s: %d of %d warm-up norms" % (pre, nbuf, cap))
        emit(out, pre + ".buffer", *r.un("%dd" % nbuf))
    elif m == "adagc":
        emit(out, pre + ".steps", r.one("q"))
        emit(out, pre + ".gamma", *r.un("%dd" % nsel))
        emit(out, pre + ".norms", *r.un("%dd" % nsel))
        info(r, out, pre + ".last")
    elif m == "auto":
        warmup, nseen = r.un("2i")
        emit(out, pre + ".warmup", warmup)
        emit(out, pre + ".nseen", nseen)
        emit(out, pre + ".steps", r.one("q"))
        emit(out, pre + ".threshold", r.one("d"))
        info(r, out, pre + ".last")
        if not 0 <= nseen <= warmup:
            raise Bad("%s: %d of %d warm-up norms" % (pre, nseen, warmup))
        emit(out, pre + ".seen", *r.un("%dd" % nseen))


def checkpoint(data, out, pre, model_bytes=None):
    """A whole checkpoint (header and payload); the model's own state is what is
    left after the groups (model_bytes: its expected size, None = all of it)."""
    head, payload = framed(data, b"CLCK", 3, pre or "checkpoint")
    for k, v in head.items():
        emit(out, pre + k, v)
    r = Reader(payload, pre or "checkpoint")
    emit(out, pre + "step", r.one("q"))
    state, inc, has_spare = r.un("QQi")
    r.take(4)  # the padding inside the C struct before the double
    spare = r.one("d")
    emit(out, pre + "rng", state, inc, has_spare, spare)
    emit(out, pre + "rec_avg", r.one("d"))
    emit(out, pre + "rec_seen", r.one("q"))
    emit(out, pre + "scaler", *r.un("fiq"))  # loss scale, growth tracker, steps skipped
    ngroups = r.one("I")
    emit(out, pre + "ngroups", ngroups)
    for g in range(ngroups):
        gp = "%sgroup%d." % (pre, g)
        n, nbuf = r.un("QQ")
        emit(out, gp + "n", n)
        emit(out, gp + "nbuf", nbuf)
        for name, cnt in (("data", n), ("buf", nbuf), ("m", n), ("v", n)):
            emit(out, gp + name, *r.un("%df" % cnt))
        emit(out, gp + "counters", *r.un("4q"))  # optimizer t, updates, clipped, skipped
        emit(out, gp + "lr", r.one("d"))
        clipper(r, out, gp + "clip")
    rest = r.left() if model_bytes is None else model_bytes
    emit(out, pre + "model_state", r.take(rest).hex() or "-")
    if r.left():
        raise Bad("%s: %d bytes after the model state" % (pre or "checkpoint", r.left()))


def resume(data, out):
    head, payload = framed(data, b"CLRS", 1, "resume")
    for k, v in head.items():
        emit(out, k, v)
    r = Reader(payload, "resume")
    fp = r.take(r.one("I"))
    emit(out, "fingerprint", fp.hex() or "-")
    emit(out, "seconds", r.one("d"))
    emit(out, "rows", *r.un("QQ"))  # metrics.csv, grad_norms.csv
    checkpoint(r.take(r.one("Q")), out, "ckpt.")
    nev = r.one("I")
    emit(out, "nevents", nev)
    for i in range(nev):
        emit(out, "event%d" % i, *r.un("qddqq"))  # spike, loss, avg, restored, skipped
    nsnap = r.one("I")
    emit(out, "nsnap", nsnap)
    for i in range(nsnap):
        slot, step, n = r.un("IqQ")
        emit(out, "snap%d.slot_step" % i, slot, step)
        checkpoint(r.take(n), out, "snap%d." % i)
    if r.left():
        raise Bad("resume: %d bytes after the recovery ring" % r.left())


# ---------------------------------------------------------------- golden file
# The fixture's shapes; the pattern below is repeated in tests/test_checkpoint.c.
GOLDEN_ROWS = [4, 2]


def golden_value(g, k, i):
    """Field k (0 data, 1 m, 2 v) of group g, element i: exact in float32."""
    return (g + 1) * 100.0 + k * 10.0 + i * 0.25 if k != 2 else 1.0 + i / 8.0 + g


def golden():
    p = struct.pack("<q", 77)                                   # step
    p += struct.pack("<QQi", 0x0123456789ABCDEF, 0x55, 1) + b"\0" * 4 + struct.pack("<d", -0.5)
    p += struct.pack("<dq", 2.75, 19)                           # running average, seen
    p += struct.pack("<fiq", 1024.0, 37, 6)                     # loss scale, tracker, skipped
    p += struct.pack("<I", len(GOLDEN_ROWS))
    for g, rows in enumerate(GOLDEN_ROWS):
        n = rows * 3 + 3
        p += struct.pack("<QQ", n, 0)
        for k in (0, 1, 2):
            p += struct.pack("<%df" % n, *[golden_value(g, k, i) for i in range(n)])
        p += struct.pack("<4q", 5 + g, 6 + g, 2, 1) + struct.pack("<d", 0.125 * (g + 1))
        # clipper: zclip (5), 2 selected tensors, 3 of 25 warm-up norms
        p += b"CLPR" + struct.pack("<2i", 5, 2)
        p += struct.pack("<3iq", 25, 3, 0, 3 + g) + struct.pack("<4d", 1.5, 0.25, 0.0, -1.0)
        p += struct.pack("<4d2i", 2.0, 1.0, 1.0, 0.5, 1, 1)
        p += struct.pack("<3d", 1.0 + g, 2.0, 3.0)
    p += struct.pack("<q", 4321)                                # the fixture's data position
    return b"CLCK" + struct.pack("<IQI", 3, len(p), zlib.crc32(p) & 0xFFFFFFFF) + p


def main(argv):
    if len(argv) == 3 and argv[1] == "golden":
        with open(argv[2], "wb") as f:
            f.write(golden())
        return 0
    if len(argv) != 3 or argv[1] != "read":
        print(__doc__, file=sys.stderr)
        return 2
    with open(argv[2], "rb") as f:
        data = f.read()
    out = []
    try:
        if data[:4] == b"CLRS":
            resume(data, out)
        else:
            checkpoint(data, out, "")
    except (Bad, struct.error) as e:
        print("ckpt_format: %s" % e, file=sys.stderr)
        return 1
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
