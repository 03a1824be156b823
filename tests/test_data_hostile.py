"""helpers.data against hostile files: whatever a batch file or an archive holds, loading either
gives a valid batch or the course's ``CifarDataError``, and never allocates far more memory
than the file holds (issue 13, item 1).

The pickles here are written opcode by opcode with only the globals the loader allows
(``numpy.dtype``, ``numpy.ndarray``, ``numpy.core.multiarray._reconstruct``, ``_codecs.encode``),
so they reach the unpickler instead of being refused at the first import.
"""

import gzip
import io
import pickle
import random
import struct
import tarfile
import tracemalloc

import numpy as np
import pytest

from helpers import data
from helpers.data import CifarDataError, load_cifar10

#: How much more than the file itself one load may allocate (tracemalloc's peak).
MEMORY_SLACK = 100_000_000

# --- a small pickle assembler ------------------------------------------------------------------


def op_int(n: int) -> bytes:
    if -(2**31) <= n < 2**31:
        return b"J" + struct.pack("<i", n)
    raw = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True)
    if len(raw) < 256:
        return b"\x8a" + bytes([len(raw)]) + raw
    return b"\x8b" + struct.pack("<i", len(raw)) + raw


def op(value) -> bytes:
    """Opcodes that push ``value`` (an int, bool, None, str, bytes, tuple, list or
    ``Raw`` opcodes) onto the unpickler's stack."""
    if isinstance(value, Raw):
        return value.code
    if value is None:
        return b"N"
    if isinstance(value, bool):
        return b"\x88" if value else b"\x89"
    if isinstance(value, int):
        return op_int(value)
    if isinstance(value, float):
        return b"G" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        return b"X" + struct.pack("<I", len(raw)) + raw
    if isinstance(value, bytes):
        return b"B" + struct.pack("<I", len(value)) + value
    if isinstance(value, tuple):
        return b"(" + b"".join(op(v) for v in value) + b"t"
    if isinstance(value, list):
        return b"](" + b"".join(op(v) for v in value) + b"e"
    if isinstance(value, dict):
        return b"}(" + b"".join(op(k) + op(v) for k, v in value.items()) + b"u"
    raise TypeError(value)


class Raw:
    """Opcodes written by hand, pushing one value."""

    def __init__(self, code: bytes):
        self.code = code


def glob(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def dtype(code="u1", state=(3, "|", None, None, None, -1, -1, 0)) -> Raw:
    """``numpy.dtype(code, False, True)``, then its state, as numpy pickles a dtype."""
    built = glob("numpy", "dtype") + op((code, False, True)) + b"R"
    return Raw(built + (op(state) + b"b" if state is not None else b""))


def array(shape, dtype_=None, raw=b"", fortran=False, state_len=5, reconstruct_shape=(0,)):
    """An ndarray the way numpy pickles one: ``_reconstruct`` then ``__setstate__``."""
    dtype_ = dtype() if dtype_ is None else dtype_
    head = glob("numpy.core.multiarray", "_reconstruct")
    head += op((Raw(glob("numpy", "ndarray")), reconstruct_shape, b"b")) + b"R"
    if state_len is None:  # no __setstate__: numpy would allocate the declared shape
        return Raw(head)
    state = (1, shape, dtype_, fortran, raw, 0)[max(5 - state_len, 0) : max(5, state_len)]
    return Raw(head + op(state) + b"b")


def pickled(value) -> bytes:
    return b"\x80\x02" + op(value) + b"."


def batch(n=4, labels=None, data_=None, keys=bytes) -> bytes:
    """A valid batch of ``n`` images, as bytes, with optional replacements."""
    rng = np.random.default_rng(n)
    pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    data_ = array((n, 3072), raw=pixels.tobytes()) if data_ is None else data_
    labels = [i % 10 for i in range(n)] if labels is None else labels
    return pickled({keys(b"data"): data_, keys(b"labels"): labels, keys(b"batch_label"): b"x"})


def as_str(key: bytes) -> str:
    return key.decode()


# --- running a load under a memory watch -------------------------------------------------------


def load_with(folder, raw: bytes, name="data_batch_1"):
    """Put ``raw`` in place of batch ``name`` and load: return the dataset, or the
    CifarDataError; fail on anything else or on a peak allocation far above the file."""
    (folder / name).write_bytes(raw)
    tracemalloc.start()
    try:
        result = load_cifar10(folder)
    except CifarDataError as err:
        result = err
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 3 * len(raw) + MEMORY_SLACK, f"loading {len(raw):,} bytes allocated {peak:,}"
    if not isinstance(result, CifarDataError):
        assert result.x_train.dtype == np.uint8 and result.x_train.shape[1:] == (32, 32, 3)
        assert result.y_train.shape == (len(result.x_train),)
        assert result.y_train.min() >= 0 and result.y_train.max() <= 9
        assert len(result.x_train) <= 5 * 10_000
    return result


def assert_refused(result, *patterns):
    assert isinstance(result, CifarDataError), "a hostile file was loaded"
    message = str(result)
    for pattern in ("data_batch_1", *patterns):
        assert pattern in message, message


# --- the assembler speaks numpy's language -----------------------------------------------------


def test_assembled_batch_matches_what_numpy_unpickles(tiny_cifar, no_cifar_env):
    raw = batch(6)
    real = pickle.loads(raw, encoding="bytes")  # numpy itself rebuilds the array
    ds = load_with(tiny_cifar, raw)
    assert len(ds.x_train) == 6 + 4 * 20
    np.testing.assert_array_equal(
        ds.x_train[:6].transpose(0, 3, 1, 2).reshape(6, -1), real[b"data"]
    )


def test_python2_batch_as_in_the_official_release_loads(tiny_cifar, no_cifar_env):
    """The official files were written by Python 2: str keys and data are BINSTRINGs."""
    pixels = np.arange(2 * 3072, dtype=np.uint32).astype(np.uint8)

    def py2str(b: bytes) -> Raw:
        return Raw(b"T" + struct.pack("<i", len(b)) + b)

    head = glob("numpy.core.multiarray", "_reconstruct")
    head += op((Raw(glob("numpy", "ndarray")), (0,), py2str(b"b"))) + b"R"
    dt = glob("numpy", "dtype") + op((py2str(b"u1"), 0, 1)) + b"R"
    dt += op((3, py2str(b"|"), None, None, None, -1, -1, 0)) + b"b"
    arr = Raw(head + op((1, (2, 3072), Raw(dt), False, py2str(pixels.tobytes()))) + b"b")
    raw = pickled({py2str(b"data"): arr, py2str(b"labels"): [3, 7]})
    assert pickle.loads(raw, encoding="bytes")[b"data"].tobytes() == pixels.tobytes()
    ds = load_with(tiny_cifar, raw)
    assert ds.y_train[:2].tolist() == [3, 7]


# --- one test per hostile file that got through before -----------------------------------------


@pytest.mark.parametrize("rows", [30_000, 10**10])
def test_declared_shape_without_pixels_is_refused(rows, tiny_cifar, no_cifar_env):
    """The 327-byte file: arrays that only declare a shape (numpy would allocate it)."""
    pixels = array(None, state_len=None, reconstruct_shape=(rows, 3072))
    labels = Raw(glob("numpy.core.multiarray", "_reconstruct"))
    labels.code += op((Raw(glob("numpy", "ndarray")), (rows,), dtype("i8"))) + b"R"
    raw = batch(data_=pixels, labels=labels)
    assert len(raw) < 400
    assert_refused(load_with(tiny_cifar, raw), "'data' is not an array", "get the data")


def test_more_rows_than_a_batch_is_refused(tiny_cifar, no_cifar_env):
    rows = 10_001
    pixels = array((rows, 3072), raw=bytes(rows * 3072))
    raw = batch(data_=pixels, labels=[0] * rows)
    assert_refused(load_with(tiny_cifar, raw), "10,001 x 3,072", "more than a CIFAR-10 batch")


def test_dtype_with_a_huge_subarray_is_refused(tiny_cifar, no_cifar_env):
    """A dtype whose items are each 1 GB: 30 of them declare 30 GB in a few bytes."""
    huge = dtype("V8", state=(3, "|", (Raw(dtype().code), (10**9,)), None, None, 10**9, 1, 0))
    pixels = array(None, state_len=None)
    pixels.code = glob("numpy.core.multiarray", "_reconstruct")
    pixels.code += op((Raw(glob("numpy", "ndarray")), (30,), huge)) + b"R"
    assert_refused(load_with(tiny_cifar, batch(data_=pixels)), "'data' is not an array")


def test_memo_index_that_sizes_a_huge_table_is_refused(tiny_cifar, no_cifar_env):
    """LONG_BINPUT 100,000,000: the unpickler would size its memo to 1.6 GB."""
    raw = b"\x80\x02N" + b"r" + struct.pack("<I", 100_000_000) + b"0" + batch()[2:]
    assert_refused(load_with(tiny_cifar, raw), "memo index", "truncated or corrupt")


@pytest.mark.parametrize("opcode", [b"\x8e", b"\x8d", b"\x96"])  # BINBYTES8, BINUNICODE8, ...
def test_string_longer_than_the_file_is_refused(opcode, tiny_cifar, no_cifar_env):
    raw = b"\x80\x05" + opcode + struct.pack("<Q", 2**40) + b"x" * 100 + b"."
    message = load_with(tiny_cifar, raw)  # pickletools' words: "expected N bytes ... only M remain"
    assert_refused(message, "truncated or corrupt", "1099511627776 bytes", "only 101 remain")


def test_nested_label_lists_are_refused_before_numpy_expands_them(tiny_cifar, no_cifar_env):
    """Labels of 4 nested lists of 80 shared references: 41 million labels from 700 bytes."""
    level = b"](" + b"K\x00" * 80 + b"eq\x000"  # a list of 80 zeros, kept in memo slot 0
    for depth in range(1, 4):  # a list of 80 references to the previous one, in slot depth
        level += b"](" + (b"h" + bytes([depth - 1])) * 80 + b"eq" + bytes([depth]) + b"0"
    level += b"h\x03"
    raw = batch(labels=Raw(level))
    loaded = pickle.loads(raw, encoding="bytes")[b"labels"]
    assert len(loaded) == 80 and len(loaded[0][0][0]) == 80
    assert_refused(load_with(tiny_cifar, raw), "'labels' is not a list")


def test_file_bigger_than_any_batch_is_refused_unread(tiny_cifar, no_cifar_env):
    raw = batch() + bytes(41_000_000)  # a valid batch, then 41 MB after its end
    assert_refused(load_with(tiny_cifar, raw), "41.0 MB", "about 31 MB")


def test_unreadable_file_is_the_courses_error(tiny_cifar, no_cifar_env, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(tiny_cifar), "open", refuse)
    with pytest.raises(CifarDataError, match=r"data_batch_1 could not be read.*Permission"):
        load_cifar10(tiny_cifar)


# --- archives --------------------------------------------------------------------------------


def zeros_gz(path, header: bytes, n_zeros: int) -> None:
    """A .tar.gz holding ``header`` and then ``n_zeros`` zero bytes, written a MB at a time."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(header)
        for start in range(0, n_zeros, 1 << 20):
            out.write(bytes(min(1 << 20, n_zeros - start)))


def tar_header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.GNU_FORMAT)


def load_archive(path):
    tracemalloc.start()
    try:
        with pytest.raises(CifarDataError) as caught:
            load_cifar10(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_SLACK, f"reading the archive allocated {peak:,} bytes"
    return str(caught.value)


def test_archive_member_declaring_10_gb_is_refused_unread(tmp_path, no_cifar_env):
    path = tmp_path / "cifar-10-python.tar.gz"
    zeros_gz(path, tar_header("cifar-10-batches-py/data_batch_1", 10**10), 150_000_000)
    message = load_archive(path)
    assert "data_batch_1 is 10,000.0 MB" in message and "about 31 MB" in message


def test_archive_with_a_huge_extended_header_stops_reading(tmp_path, no_cifar_env):
    """A pax header declaring 10 GB (a gzip bomb of zeros): tarfile would read it whole."""
    path = tmp_path / "cifar-10-python.tar.gz"
    zeros_gz(path, tar_header("pax", 10**10, tarfile.XHDTYPE), 400_000_000)
    message = load_archive(path)
    assert "unpacks to more than 320 MB" in message and str(path) in message


def test_archive_of_random_bytes_is_refused(tmp_path, no_cifar_env):
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(gzip.compress(random.Random(1).randbytes(5000)))
    assert "not a readable .tar.gz (invalid header)" in load_archive(path)  # tarfile's words


def test_archive_with_a_large_extended_header_is_refused_unread(tmp_path, no_cifar_env):
    """A 30 MB pax header of distinct keys: tarfile would build a dict of millions of them."""
    path = tmp_path / "cifar-10-python.tar.gz"
    zeros_gz(path, tar_header("pax", 30_000_000, tarfile.XHDTYPE), 31_000_000)
    assert "a tar header declares 30,000,128 bytes" in load_archive(path)


def test_archive_of_many_entries_is_refused(tmp_path, no_cifar_env):
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for i in range(101):
            tar.addfile(tarfile.TarInfo(f"empty_{i}"), io.BytesIO(b""))
    assert "over 100 entries; CIFAR-10 holds 9" in load_archive(path)


def test_archive_entry_pointing_backwards_is_refused(tmp_path, no_cifar_env):
    """A negative size (GNU base-256) points tarfile back at the same header, forever."""
    header = bytearray(tar_header("junk", 0))
    header[124:136] = (-512 % 2**96).to_bytes(12, "big")  # size -512, then fix the checksum
    header[148:156] = b"%06o\0 " % (sum(header[:148]) + 8 * 32 + sum(header[156:]))
    path = tmp_path / "cifar-10-python.tar.gz"
    zeros_gz(path, tar_header("empty", 0) + bytes(header) + bytes(2048), 0)
    assert "points back" in load_archive(path)


# --- splitting -------------------------------------------------------------------------------


def test_a_class_with_one_example_is_named():
    y = np.array([0, 0, 1, 1, 2, 2, 3, 1, 0, 2])
    with pytest.raises(ValueError, match=r"class 3 has only 1 example.*at least two examples"):
        data.train_val_split(y.reshape(-1, 1), y, 0.5)


def test_images_and_labels_of_different_lengths_are_named():
    y = np.repeat(np.arange(10), 10)
    with pytest.raises(ValueError, match=r"x has 99 examples but y has 100 labels"):
        data.train_val_split(y[:99].reshape(-1, 1), y, 0.2)


# --- many hostile files, generated -----------------------------------------------------------

SHAPES = [(), (0,), (4,), (4, 3072), (4, 1024), (3072, 4), (2, 2, 3072), (-1, 3072), (4.0, 3072),
          (True, 3072), (10**6, 3072), (10**10, 3072), (2**62, 2**62), ((4,), 3072), [4, 3072],
          (10_000, 3072), (10_001, 3072)]  # fmt: skip
DTYPES = ["u1", "i8", "f4", "O", "V8", "S10", "b1", "u1 big", "u1 subarray", 7, b"u1", "i8 >"]


def random_dtype(rng: random.Random) -> Raw:
    choice = rng.choice(DTYPES)
    if choice == "u1 big":
        return dtype("V1", state=(3, "|", None, None, None, 10**12, 1, 0))
    if choice == "u1 subarray":
        return dtype("V8", state=(3, "|", (Raw(dtype().code), (10**9,)), None, None, 1, 1, 0))
    if choice == "i8 >":
        return dtype("i8", state=(3, ">", None, None, None, -1, -1, 0))
    state = rng.choice([(3, "|", None, None, None, -1, -1, 0), None, (3,), "junk"])
    return dtype(choice, state=state)


def random_array(rng: random.Random) -> Raw:
    shape = rng.choice(SHAPES)
    n = 1  # how many bytes the shape declares, when that is small enough to write
    for size in shape if isinstance(shape, tuple) else []:
        n *= size if isinstance(size, int) and 0 <= size < 10**5 else 0
    raw = rng.choice([b"", bytes(n), bytes(n + 1), bytes(max(n - 1, 0)), "text", None, [0] * 4])
    return array(
        shape,
        dtype_=random_dtype(rng),
        raw=raw,
        fortran=rng.choice([False, True, 2]),
        state_len=rng.choice([5, 5, 5, 4, 3, 6, None]),
        reconstruct_shape=rng.choice([(0,), (4, 3072), (10**12,), (10_000, 3072)]),
    )


def random_labels(rng: random.Random, n: int):
    kind = rng.randrange(9)
    if kind == 0:
        return [rng.randrange(10) for _ in range(n)]
    if kind == 1:
        return [rng.randrange(10) for _ in range(rng.choice([0, n - 1, n + 1, 10_001, 20_000]))]
    if kind == 2:
        return [rng.choice([0, 1.5, b"3", True, None, 2**100, -(2**70), 10, -1]) for _ in range(n)]
    if kind == 3:
        return [[0] * n] * rng.choice([1, n])
    if kind == 4:
        return tuple(range(n))
    if kind == 5:
        return array((n,), dtype("i8"), np.arange(n, dtype="<i8").tobytes() * rng.choice([0, 1]))
    if kind == 6:
        return random_array(rng)
    return rng.choice([None, b"labels", 3, {"a": 1}])


def random_structure(rng: random.Random) -> bytes:
    """A pickle with a random mix of valid and hostile parts."""
    n = rng.choice([0, 1, 4, 10])
    pixels = array((n, 3072), raw=bytes(n * 3072)) if rng.random() < 0.4 else random_array(rng)
    labels = random_labels(rng, n)
    keys = rng.choice([bytes, as_str, lambda k: k.upper()])
    if rng.random() < 0.1:
        return pickled(rng.choice([[pixels, labels], pixels, 3, None, "batch"]))
    return batch(n, labels=labels, data_=pixels, keys=keys)


BOMBS = [
    b"\x80\x02N" + b"2" * 2_000_000 + b".",  # DUP two million times
    b"\x80\x02]N" + b"2" * 500_000 + b"e.",  # ...into a list
    b"\x80\x02" + b"(" * 300_000 + b".",  # MARK 300,000 deep
    b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b".",  # lists nested 200,000 deep
    b"\x80\x02Np99999999999\n.",  # PUT with a huge memo index
    b"\x80\x02Nr\xff\xff\xff\x7f.",  # LONG_BINPUT likewise
    b"\x80\x04\x95" + struct.pack("<Q", 2**50) + b"N.",  # FRAME longer than the file
    b"\x80\x02\x8b" + struct.pack("<i", 2**31 - 1) + b".",  # LONG4 longer than the file
    b"\x80\x02T" + struct.pack("<i", -5) + b".",  # negative length
    b"\x80\x02L" + b"9" * 100_000 + b"L\n.",  # a 100,000-digit number
    b"\x80\x02\x82\x01.",  # EXT1 (copyreg extension registry)
    b"\x80\x02Pfoo\n.",  # persistent id
    b"\x80\x05\x97.",  # NEXT_BUFFER without buffers
    b"\x80\x02" + glob("_codecs", "encode") + op(("x" * 1000, "zlib")) + b"R.",
    b"\x80\x02" + glob("_codecs", "encode") + op((b"\x00" * 1000, "hex")) + b"R.",
    b"\x80\x02" + glob("numpy", "dtype") + op(("u1",)) + b"R" + op((1,) * 9) + b"b.",
    b"\x80\x02" + glob("numpy", "ndarray") + op(((10**6, 3072), "u1")) + b"R.",
    b"\x80\x04\x8c\x05numpy\x8c\x0afrombuffer\x93.",  # STACK_GLOBAL of a refused name
    b"\x80\x02" + glob("builtins", "eval") + op(("1",)) + b"R.",
    b"",
    b"\x80",
    b".",
]


@pytest.mark.parametrize("case", range(len(BOMBS)))
def test_pickle_bombs_are_refused(case, tiny_cifar, no_cifar_env):
    assert_refused(load_with(tiny_cifar, BOMBS[case]))


@pytest.mark.parametrize("seed", range(6))
def test_random_files_load_or_are_refused_in_bounded_memory(seed, tiny_cifar, no_cifar_env):
    """A few hundred generated files per family: random bytes, damaged valid batches, and
    crafted batches (random shapes, dtypes, lengths, nesting) from the allowed globals."""
    rng = random.Random(seed)
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(60):
        family = (seed + case) % 4
        if family == 0:
            raw = rng.randbytes(rng.randrange(0, 4096))
            raw = rng.choice([b"", b"\x80\x02", b"\x80\x04"]) + raw
        elif family in (1, 2):
            raw = random_structure(rng)
        else:
            raw = bytearray(batch(rng.choice([1, 4])))
            for _ in range(rng.randrange(1, 8)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
            raw = bytes(raw[: rng.randrange(1, len(raw) + 1)] if rng.random() < 0.5 else raw)
        result = load_with(tiny_cifar, raw)
        outcomes["refused" if isinstance(result, CifarDataError) else "loaded"] += 1
        if isinstance(result, CifarDataError):
            assert "data_batch_1" in str(result) and "CIFAR10_DIR" in str(result)
    assert outcomes["refused"] > 0


def test_real_pickles_of_many_shapes_load_or_are_refused(tiny_cifar, no_cifar_env):
    """What numpy itself writes, for every protocol, with right and wrong shapes and dtypes."""
    for protocol in range(0, 6):
        for shape, kind in [((4, 3072), np.uint8), ((4, 1024), np.uint8), ((4, 3072), np.int16),
                            ((4, 3, 1024), np.uint8), ((0, 3072), np.uint8)]:  # fmt: skip
            pixels = np.zeros(shape, kind)
            body = {b"data": pixels, b"labels": [1] * shape[0], b"filenames": [b"a"] * shape[0]}
            raw = pickle.dumps(body, protocol=protocol)
            result = load_with(tiny_cifar, raw)
            valid = shape[1:] == (3072,) and kind == np.uint8 and protocol < 5
            valid = valid and (shape[0] > 0 or protocol >= 3)  # b'' is bytes() below 3
            assert isinstance(result, CifarDataError) != valid, (protocol, shape, kind, result)


def test_archive_damaged_anywhere_is_refused_or_loads(tiny_cifar_archive, no_cifar_env):
    good = gzip.decompress(tiny_cifar_archive.read_bytes())
    rng = random.Random(0)
    for _ in range(40):
        damaged = bytearray(good)
        for _ in range(rng.randrange(1, 20)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        damaged = damaged[: rng.randrange(len(damaged) // 2, len(damaged) + 1)]
        tiny_cifar_archive.write_bytes(gzip.compress(bytes(damaged), compresslevel=1))
        tracemalloc.start()
        try:
            load_cifar10(tiny_cifar_archive)
        except CifarDataError as err:
            assert "cifar-10-python.tar.gz" in str(err)
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        assert peak < MEMORY_SLACK
    tiny_cifar_archive.write_bytes(gzip.compress(good)[:20_000])  # cut inside a batch
    with pytest.raises(CifarDataError, match="not a readable"):
        load_cifar10(tiny_cifar_archive)


def test_mixed_archive_with_long_names_and_pax_headers_loads(tiny_cifar, tmp_path, no_cifar_env):
    """A re-packed archive (pax format, extra members, ./ prefixes) still loads."""
    path = tmp_path / "repacked.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        extra = tarfile.TarInfo("./" + "x" * 150 + "/._notes")
        extra.pax_headers = {"LIBARCHIVE.xattr.com.apple.quarantine": "q" * 500}
        tar.addfile(extra, io.BytesIO(b""))
        tar.add(tiny_cifar, arcname="./cifar-10-batches-py")
    assert len(load_cifar10(path).x_train) == 100
