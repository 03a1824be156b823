"""Reading CIFAR-10's files safely: the batch files (pickles) and the official ``.tar.gz``.

The files come from wherever a learner points, so they are untrusted: every size a file
declares is checked against a real batch (10,000 images of 3,072 bytes) before anything is
allocated, the pickle's instructions are walked (``pickletools.genops``) before it is
unpickled, the unpickler builds only stand-ins for NumPy objects, and the archive is read
through a stream that stops where CIFAR-10 ends. Every problem is a ``CifarDataError`` that
names the file and says what to do.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import io
import pickle
import pickletools
import tarfile
import zlib
from functools import partial
from pathlib import Path

import numpy as np

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
#: Height, width and channels of one CIFAR-10 image: the course's one name for it.
IMAGE_SHAPE = (32, 32, 3)
NUM_CLASSES = len(CLASS_NAMES)

DIR_ENV = "CIFAR10_DIR"
BATCHES_DIR = "cifar-10-batches-py"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"

HOW_TO_GET = (
    f"Download {ORIGIN} (163 MB) on a machine that is online, copy it here, and set "
    f"{DIR_ENV} to the archive or to the folder it unpacks to ({BATCHES_DIR}). "
    f"On a course machine with ../shared, build a mirror with "
    f"`../shared/tools/make-cifar10-mirror DIR` and set {DIR_ENV} to the path it prints."
)

# A batch holds 10,000 images of 32 x 32 x 3 = 3,072 bytes, so no array in it is over 30.7 MB.
_BATCH_ROWS = 10_000
_ROW_BYTES = int(np.prod(IMAGE_SHAPE))
_MAX_ARRAY_BYTES = _BATCH_ROWS * _ROW_BYTES
#: A real batch file is about 31 MB (pixels, labels and file names); a bigger one is not a batch.
_MAX_FILE_BYTES = 40_000_000
#: A real batch is about 30,000 pickle instructions (a label and a file name per image).
_MAX_PICKLE_OPS = 100_000
#: The official archive unpacks to about 187 MB; reading gives up well past that.
_MAX_ARCHIVE_BYTES = 8 * _MAX_FILE_BYTES
#: tarfile reads a header whole, and members are read in pieces of this size; CIFAR-10's
#: headers are 512 bytes.
_MAX_TAR_READ = 1 << 20
#: The official archive holds 9 entries (a folder, 7 batches and a readme).
_MAX_TAR_MEMBERS = 100


class CifarDataError(ValueError):
    """CIFAR-10 could not be found or a file of it is damaged; the message says what to do."""


class _Damaged(Exception):
    """A file is not what it claims to be; the message says what is wrong with it."""


class _RefusedGlobal(pickle.UnpicklingError):
    """The pickle asked for a function or class that a CIFAR-10 batch never needs."""


class _ArrayStub:
    """Stands in for a NumPy array while unpickling: records what the file declares and
    allocates nothing; ``_array`` builds the array only after checking its size."""

    def __init__(self, *args):
        self.state = None

    def __setstate__(self, state):
        self.state = state


class _DtypeStub:
    """Stands in for a NumPy dtype while unpickling (checked by ``_dtype``)."""

    def __init__(self, code=None, *args):
        self.code, self.state = code, None

    def __setstate__(self, state):
        self.state = state


def _encode_latin1(text, encoding="latin1"):
    """``_codecs.encode`` as Python 3's protocol-2 pickles use it: text back to bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _Damaged("it asks to encode something other than text as latin-1")
    return text.encode("latin-1")


# What the CIFAR-10 pickles need to rebuild their arrays, each mapped to a stand-in that runs no
# NumPy code: a file declaring a 100 GB array gets a stub, checked before anything is allocated.
_ALLOWED_GLOBALS = {
    ("_codecs", "encode"): _encode_latin1,
    ("numpy.core.multiarray", "_reconstruct"): _ArrayStub,
    ("numpy._core.multiarray", "_reconstruct"): _ArrayStub,
    ("numpy", "ndarray"): _ArrayStub,
    ("numpy", "dtype"): _DtypeStub,
}


class _CifarUnpickler(pickle.Unpickler):
    """Builds dicts, lists, bytes, numbers and array stubs; refuses any other callable."""

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[module, name]
        raise _RefusedGlobal(
            f"refusing to load {module}.{name}: a CIFAR-10 batch contains only arrays, "
            "lists and bytes, so this file is not one (it may be malicious)"
        )


def _check_opcodes(raw: bytes) -> None:
    """Walk a pickle's instructions without building anything (``genops`` raises ValueError
    for an unknown opcode, a length past the end or a missing STOP), so the unpickler never
    sees those, a memo index that would size a huge table, or more objects than a batch has."""
    try:
        for count, (opcode, arg, pos) in enumerate(pickletools.genops(raw), 1):
            if count > _MAX_PICKLE_OPS:
                raise _Damaged(f"over {_MAX_PICKLE_OPS:,} pickle opcodes; a batch has about 30,000")
            if opcode.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > _MAX_PICKLE_OPS:
                raise _Damaged(f"the memo index at byte {pos:,} is far beyond a batch's")
            if opcode.name == "FRAME" and arg > len(raw) - pos:
                raise _Damaged(f"the frame at byte {pos:,} is longer than the file")
    except ValueError as err:  # also a number too long to convert (Python's 4,300 digits)
        raise _Damaged(str(err)) from None


def _unpickle(raw: bytes, name: str) -> dict:
    try:
        _check_opcodes(raw)
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _RefusedGlobal as err:
        raise CifarDataError(
            f"{name}: {err}. Replace it with the official file. {HOW_TO_GET}"
        ) from None
    except Exception as err:  # anything a damaged file makes the unpickler raise
        reason = str(err) if isinstance(err, _Damaged) else f"{type(err).__name__}: {err}"
        raise CifarDataError(
            f"{name} is truncated or corrupt ({reason[:200]}). "
            f"Delete it and get the data again. {HOW_TO_GET}"
        ) from err
    if not isinstance(obj, dict):
        raise CifarDataError(f"{name} does not hold a CIFAR-10 batch (a dict). {HOW_TO_GET}")
    return obj


def _number(n: int) -> str:
    """``n`` with thousands separators, or a stand-in for numbers too long to print."""
    return f"{n:,}" if abs(n) < 10**18 else f"a number {'below -' if n < 0 else 'over '}10^18"


def _dtype(stub, what: str) -> np.dtype:
    """The dtype a file declares for ``what``, if it is a plain integer type."""
    code = getattr(stub, "code", None)
    code = code.decode("latin-1") if isinstance(code, bytes) else code
    state = getattr(stub, "state", None)
    if state is None:
        state = (3, "|", None, None, None)
    order = state[1] if isinstance(state, tuple) and len(state) >= 5 else None
    order = order.decode("latin-1") if isinstance(order, bytes) else order
    if (
        not isinstance(stub, _DtypeStub)
        or not isinstance(code, str)
        or code not in {f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8)}
        or order not in ("<", ">", "|", "=")
        or any(part is not None for part in state[2:5])
    ):
        raise _Damaged(f"'{what}' is not an array of integers")
    dtype = np.dtype(code)
    return dtype.newbyteorder(order) if order in ("<", ">") else dtype


def _array(stub, what: str) -> np.ndarray:
    """Build the array a file declares for ``what``, after checking the size it declares
    against a CIFAR-10 batch and against the bytes the file actually holds."""
    state = stub.state if isinstance(stub, _ArrayStub) else None
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _Damaged(f"'{what}' is not an array (it holds no data)")
    shape, dtype, fortran, raw = state[-4:]
    if not (
        isinstance(shape, tuple)
        and 1 <= len(shape) <= 2
        and all(type(n) is int and n >= 0 for n in shape)
    ):
        raise _Damaged(f"'{what}' declares a shape that is not 1 or 2 sizes")
    dtype = _dtype(dtype, what)
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    declared = " x ".join(_number(n) for n in shape)
    if nbytes > _MAX_ARRAY_BYTES:
        raise _Damaged(
            f"'{what}' declares {declared} values ({_number(nbytes)} bytes), more than a "
            f"CIFAR-10 batch holds ({_BATCH_ROWS:,} x {_ROW_BYTES:,} bytes)"
        )
    if not isinstance(raw, bytes) or len(raw) != nbytes:
        held = f"{len(raw):,}" if isinstance(raw, bytes) else "no"
        raise _Damaged(f"'{what}' declares {declared} values but the file holds {held} bytes")
    return np.frombuffer(raw, dtype).reshape(shape, order="F" if fortran else "C")


def _entry(batch: dict, key: str):
    """``batch[key]`` for a batch written by Python 2 (bytes keys) or Python 3 (str keys)."""
    return batch.get(key.encode(), batch.get(key))


def _labels(labels, n_images: int) -> np.ndarray:
    """A batch's labels as int64, checked: one integer in 0-9 per image, before conversion."""
    if isinstance(labels, _ArrayStub):
        labels = _array(labels, "labels")
        values = labels.tolist() if labels.ndim == 1 and len(labels) <= _BATCH_ROWS else None
    else:
        values = list(labels) if isinstance(labels, list | tuple) else None
    if values is None or len(values) > _BATCH_ROWS or any(type(v) is not int for v in values):
        raise _Damaged(f"'labels' is not a list of at most {_BATCH_ROWS:,} integers, one per image")
    if len(values) != n_images:
        raise _Damaged(f"({len(values)},) labels for {n_images} images; expected one per image")
    if values and (min(values) < 0 or max(values) >= NUM_CLASSES):
        low, high = _number(min(values)), _number(max(values))
        raise _Damaged(f"labels range from {low} to {high}, outside 0-9 (CIFAR-100?)")
    return np.array(values, dtype=np.int64)


def _parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn one batch file's bytes into ``(images uint8 (N,32,32,3), labels int64 (N,))``."""
    batch = _unpickle(raw, name)
    try:
        data, labels = _entry(batch, "data"), _entry(batch, "labels")
        if not isinstance(data, _ArrayStub) or labels is None:
            raise _Damaged("it has no 'data' array or no 'labels'")
        data = _array(data, "data")
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW_BYTES:
            raise _Damaged(
                f"'data' has shape {data.shape} and dtype {data.dtype}; a CIFAR-10 batch "
                f"holds uint8 rows of {_ROW_BYTES} values (N, {_ROW_BYTES})"
            )
        labels = _labels(labels, len(data))
    except _Damaged as err:
        raise CifarDataError(
            f"{name}: {err}. The file is not a CIFAR-10 batch: delete it and get the data "
            f"again. {HOW_TO_GET}"
        ) from None
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # channels last
    return np.ascontiguousarray(images), labels


def _too_big(label: str, size: int) -> CifarDataError:
    return CifarDataError(
        f"{label} is {size / 1e6:,.1f} MB, but a CIFAR-10 batch file is about 31 MB (at most "
        f"{_MAX_FILE_BYTES / 1e6:.0f} MB here), so it is not one. Delete it and get the data "
        f"again. {HOW_TO_GET}"
    )


def _read_file(path: Path) -> bytes:
    """A batch file's bytes; one bigger than a batch can be is refused before it is read."""
    try:
        size = path.stat().st_size
        if size > _MAX_FILE_BYTES:
            raise _too_big(str(path), size)
        with path.open("rb") as file:
            raw, grew = file.read(size), bool(file.read(1))
    except OSError as err:
        raise CifarDataError(
            f"{path} could not be read ({type(err).__name__}: {err.strerror}). Check that "
            f"you may read it, or delete it and get the data again. {HOW_TO_GET}"
        ) from err
    if grew:
        raise CifarDataError(
            f"{path} grew while it was being read: is another program still writing it? "
            "Wait until it has finished, then load again."
        )
    return raw


def read_batches_dir(folder: Path) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` from a ``cifar-10-batches-py`` folder."""
    parts = {}
    for name in (*TRAIN_FILES, TEST_FILE):
        path = folder / name
        if not path.is_file():
            raise CifarDataError(
                f"{path} is missing: {folder} does not hold the CIFAR-10 batches "
                f"({', '.join(TRAIN_FILES)}, {TEST_FILE}). {HOW_TO_GET}"
            )
        parts[name] = _parse_batch(_read_file(path), str(path))
    return _join(parts)


class _CappedStream:
    """The decompressed archive as tarfile sees it: reading or skipping stops at ``limit``
    bytes in all and ``_MAX_TAR_READ`` at once, and never goes backwards, so a gzip bomb or a
    header declaring gigabytes stops here instead of filling memory or looping."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit = stream, limit

    def tell(self) -> int:
        return self.stream.tell()

    def seek(self, pos: int) -> int:
        self._check(pos, pos - self.tell())
        return self.stream.seek(pos)

    def read(self, n: int) -> bytes:
        self._check(self.tell() + n, n)
        if n > _MAX_TAR_READ:
            raise _Damaged(f"a tar header declares {n:,} bytes; CIFAR-10's hold 512 each")
        return self.stream.read(n)

    def _check(self, end: int, step: int) -> None:
        if end > self.limit:
            raise _Damaged(
                f"it unpacks to more than {self.limit / 1e6:.0f} MB, while CIFAR-10 "
                "unpacks to 187 MB: it is damaged or not the CIFAR-10 archive"
            )
        if step < 0:
            raise _Damaged("a tar header points back into the archive")


def read_archive(archive: Path) -> tuple[np.ndarray, ...]:
    """``(x_train, y_train, x_test, y_test)`` from ``cifar-10-python.tar.gz``, its members
    read with ``tarfile`` through a ``_CappedStream``, each checked before it is read."""
    wanted = {f"{BATCHES_DIR}/{name}": name for name in (*TRAIN_FILES, TEST_FILE)}
    parts = {}
    try:
        with (
            gzip.open(archive, "rb") as unpacked,
            tarfile.open(fileobj=_CappedStream(unpacked, _MAX_ARCHIVE_BYTES), mode="r:") as tar,
        ):
            for count, member in enumerate(tar, 1):
                if count > _MAX_TAR_MEMBERS:
                    raise _Damaged(f"it holds over {_MAX_TAR_MEMBERS} entries; CIFAR-10 holds 9")
                name = wanted.get(member.name.removeprefix("./")) if member.isfile() else None
                if name is None or name in parts:
                    continue
                label = f"{archive}!{BATCHES_DIR}/{name}"
                if member.size > _MAX_FILE_BYTES:
                    raise _too_big(label, member.size)
                pieces = iter(partial(tar.extractfile(member).read, _MAX_TAR_READ), b"")
                parts[name] = _parse_batch(b"".join(pieces), label)
                if len(parts) == len(wanted):
                    break
    except (_Damaged, tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise CifarDataError(
            f"{archive} is not a readable .tar.gz ({err}). Delete it and get it again. {HOW_TO_GET}"
        ) from err
    for name in wanted.values():
        if name not in parts:
            raise CifarDataError(
                f"{archive}!{BATCHES_DIR}/{name} is missing from the archive (or a tar header "
                f"before it is damaged). Delete it and get it again. {HOW_TO_GET}"
            )
    return _join(parts)


def _join(parts: dict) -> tuple[np.ndarray, ...]:
    x_train = np.concatenate([parts[n][0] for n in TRAIN_FILES])
    y_train = np.concatenate([parts[n][1] for n in TRAIN_FILES])
    x_test, y_test = parts[TEST_FILE]
    parts.clear()
    # Give the freed read buffers back to the system: glibc keeps them for reuse (about 170 MB
    # here), which matters on Binder's 2 GB. Elsewhere (macOS, Windows, musl) nothing happens.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return x_train, y_train, x_test, y_test
