"""CIFAR-10: finding it, reading it safely, and splitting it.

``load_cifar10()`` reads the official "python version" of CIFAR-10
(``cifar-10-batches-py``, A. Krizhevsky, "Learning Multiple Layers of Features
from Tiny Images", 2009). It looks, in order, at

1. the ``data_dir`` argument,
2. the ``CIFAR10_DIR`` environment variable (an offline mirror),
3. the Keras download cache, downloading the archive once (checked by SHA-256).

Each of the first two may be the ``cifar-10-batches-py`` folder itself, a
folder that holds it (or the archive), or the ``cifar-10-python.tar.gz``
archive. The batch files are pickles; they are read with an unpickler that
only knows how to build NumPy arrays, so a hostile file is refused instead of
executed, and every size a file declares (the file itself, an array, a string,
an archive member) is checked against what a real batch holds (10,000 images
of 3,072 bytes) before anything is allocated. Images stay ``uint8`` (150 MB
for the training set); scaling to floats happens inside the models.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import io
import os
import pickle
import pickletools
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from helpers import config

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
#: SHA-256 of the official archive (the same checksum Keras uses).
ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"

_HOW_TO_GET = (
    f"Download {ORIGIN} (163 MB) on a machine that is online, copy it here, and set "
    f"{DIR_ENV} to the archive or to the folder it unpacks to ({BATCHES_DIR}). "
    f"On a course machine with ../shared, build a mirror with "
    f"`../shared/tools/make-cifar10-mirror DIR` and set {DIR_ENV} to the path it prints."
)


class CifarDataError(ValueError):
    """CIFAR-10 could not be found or a file of it is damaged; the message says what to do."""


@dataclass(frozen=True)
class Cifar10:
    """CIFAR-10 as uint8 arrays: images ``(N, 32, 32, 3)`` and integer labels ``(N,)``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str


# --- reading batch files --------------------------------------------------------------------

# How big anything read from a file may be, known before anything is allocated. A batch holds
# 10,000 images of 32 x 32 x 3 = 3,072 bytes, so no array in it can be bigger than 30.7 MB.
_BATCH_ROWS = 10_000
_ROW_BYTES = int(np.prod(IMAGE_SHAPE))
_MAX_ARRAY_BYTES = _BATCH_ROWS * _ROW_BYTES
#: A real batch file is about 31 MB (pixels, labels and file names); a bigger one is not a batch.
_MAX_FILE_BYTES = 40_000_000
#: A real batch is about 30,000 pickle opcodes (a label and a file name per image).
_MAX_PICKLE_OPS = 100_000
#: The official archive unpacks to about 187 MB; reading gives up well past that.
_MAX_ARCHIVE_BYTES = 8 * _MAX_FILE_BYTES
_TAR_BLOCK = 512
_TWO_LINES = -10  # the argument layout of GLOBAL and INST: module and name, a line each


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


def _opcode_layouts() -> tuple[dict[int, int], dict[int, tuple[int, bool]]]:
    """For each pickle opcode, how long its argument is: a fixed size (>= 0), one or two
    lines (``pickletools.UP_TO_NEWLINE``, ``_TWO_LINES``), or a length prefix of some width."""
    counted = {
        pickletools.TAKEN_FROM_ARGUMENT1: (1, False),
        pickletools.TAKEN_FROM_ARGUMENT4: (4, True),
        pickletools.TAKEN_FROM_ARGUMENT4U: (4, False),
        pickletools.TAKEN_FROM_ARGUMENT8U: (8, False),
    }
    layouts = {}
    for op in pickletools.opcodes:
        n = 0 if op.arg is None else op.arg.n
        if op.arg is not None and op.arg.name == "stringnl_noescape_pair":
            n = _TWO_LINES
        layouts[ord(op.code)] = n
    return layouts, counted


_OPCODE_LAYOUTS, _COUNTED_ARGS = _opcode_layouts()
_MEMO_PUTS = {ord("p"), ord("r")}  # PUT, LONG_BINPUT: the unpickler sizes its memo by the index
_FRAME, _STOP = 0x95, ord(".")
_NUMBER_LINES = {ord(code) for code in "IFLgp"}  # INT, FLOAT, LONG, GET, PUT as text


def _check_opcodes(raw: bytes) -> None:
    """Walk a pickle's opcodes without building anything, so that the unpickler never sees a
    length longer than the bytes present, a memo index that would size a huge table, or more
    objects than a batch has (~30,000). Costs about 10 ms for a real batch."""
    pos, end, ops = 0, len(raw), 0
    while pos < end:
        code, start, ops = raw[pos], pos, ops + 1
        layout = _OPCODE_LAYOUTS.get(code)
        if layout is None:
            raise _Damaged(f"byte {pos:,} is not a pickle opcode")
        if ops > _MAX_PICKLE_OPS:
            raise _Damaged(f"over {_MAX_PICKLE_OPS:,} pickle opcodes; a batch has about 30,000")
        pos += 1
        if layout >= 0:
            pos += layout
        elif layout in (pickletools.UP_TO_NEWLINE, _TWO_LINES):
            for _ in range(1 if layout == pickletools.UP_TO_NEWLINE else 2):
                pos = raw.find(b"\n", pos) + 1 or end + 1
            if code in _NUMBER_LINES and pos - start > 40:
                raise _Damaged(f"the number at byte {start:,} is {pos - start - 2:,} characters")
        else:
            width, signed = _COUNTED_ARGS[layout]
            length = int.from_bytes(raw[pos : pos + width], "little", signed=signed)
            pos += width + max(length, 0) + (end + 1 if length < 0 else 0)
        if pos > end:
            raise _Damaged(f"the opcode at byte {start:,} needs more bytes than the file has")
        if code in _MEMO_PUTS and _memo_index(code, raw[start + 1 : pos]) > _MAX_PICKLE_OPS:
            raise _Damaged(f"the memo index at byte {start:,} is far beyond a batch's")
        if code == _FRAME and int.from_bytes(raw[start + 1 : pos], "little") > end - pos:
            raise _Damaged(f"the frame at byte {start:,} is longer than the file")
        if code == _STOP:
            return
    raise _Damaged("it ends before the pickle does")


def _memo_index(code: int, arg: bytes) -> int:
    """The memo slot a PUT (text) or LONG_BINPUT (4 bytes) opcode writes to."""
    return int.from_bytes(arg, "little") if code == ord("r") else int(arg.strip() or b"0")


def _unpickle(raw: bytes, name: str) -> dict:
    try:
        _check_opcodes(raw)
        obj = _CifarUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except _RefusedGlobal as err:
        raise CifarDataError(
            f"{name}: {err}. Replace it with the official file. {_HOW_TO_GET}"
        ) from None
    except Exception as err:  # anything a damaged file makes the unpickler raise
        reason = str(err) if isinstance(err, _Damaged) else f"{type(err).__name__}: {err}"
        raise CifarDataError(
            f"{name} is truncated or corrupt ({reason[:200]}). "
            f"Delete it and get the data again. {_HOW_TO_GET}"
        ) from err
    if not isinstance(obj, dict):
        raise CifarDataError(f"{name} does not hold a CIFAR-10 batch (a dict). {_HOW_TO_GET}")
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


def _labels(labels, n_images: int, name: str) -> np.ndarray:
    """A batch's labels as int64, checked: one integer in 0-9 per image, before conversion."""
    if isinstance(labels, _ArrayStub):
        labels = _array(labels, "labels")
        values = labels.tolist() if labels.ndim == 1 and len(labels) <= _BATCH_ROWS else None
    else:
        values = list(labels) if isinstance(labels, list | tuple) else None
    if values is None or len(values) > _BATCH_ROWS or any(type(v) is not int for v in values):
        raise CifarDataError(
            f"{name}: 'labels' is not a list of at most {_BATCH_ROWS:,} integers, one per image. "
            f"The file is not a CIFAR-10 batch. {_HOW_TO_GET}"
        )
    if len(values) != n_images:
        raise CifarDataError(
            f"{name}: ({len(values)},) labels for {n_images} images; expected one integer "
            f"label per image. {_HOW_TO_GET}"
        )
    if values and (min(values) < 0 or max(values) >= NUM_CLASSES):
        raise CifarDataError(
            f"{name}: labels range from {_number(min(values))} to {_number(max(values))}, "
            f"outside 0-9. The file is not CIFAR-10 (CIFAR-100?). {_HOW_TO_GET}"
        )
    return np.array(values, dtype=np.int64)


def _parse_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Turn one batch file's bytes into ``(images uint8 (N,32,32,3), labels int64 (N,))``."""
    batch = _unpickle(raw, name)
    data, labels = _entry(batch, "data"), _entry(batch, "labels")
    if not isinstance(data, _ArrayStub) or labels is None:
        raise CifarDataError(f"{name} has no 'data' array or no 'labels'. {_HOW_TO_GET}")
    try:
        data = _array(data, "data")
    except _Damaged as err:
        raise CifarDataError(
            f"{name}: {err}. The file is not a CIFAR-10 batch: delete it and get the data "
            f"again. {_HOW_TO_GET}"
        ) from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _ROW_BYTES:
        raise CifarDataError(
            f"{name}: 'data' has shape {data.shape} and dtype {data.dtype}; a CIFAR-10 batch "
            f"holds uint8 rows of {_ROW_BYTES} values (N, {_ROW_BYTES}). {_HOW_TO_GET}"
        )
    try:
        labels = _labels(labels, len(data), name)
    except _Damaged as err:
        raise CifarDataError(f"{name}: {err}. {_HOW_TO_GET}") from None
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # channels last
    return np.ascontiguousarray(images), labels


def _too_big(label: str, size: int) -> CifarDataError:
    return CifarDataError(
        f"{label} is {size / 1e6:,.1f} MB, but a CIFAR-10 batch file is about 31 MB (at most "
        f"{_MAX_FILE_BYTES / 1e6:.0f} MB here), so it is not one. Delete it and get the data "
        f"again. {_HOW_TO_GET}"
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
            f"you may read it, or delete it and get the data again. {_HOW_TO_GET}"
        ) from err
    if grew:
        raise CifarDataError(
            f"{path} grew while it was being read: is another program still writing it? "
            "Wait until it has finished, then load again."
        )
    return raw


def _read_batches_dir(folder: Path) -> tuple[np.ndarray, ...]:
    parts = {}
    for name in (*TRAIN_FILES, TEST_FILE):
        path = folder / name
        if not path.is_file():
            raise CifarDataError(
                f"{path} is missing: {folder} does not hold the CIFAR-10 batches "
                f"({', '.join(TRAIN_FILES)}, {TEST_FILE}). {_HOW_TO_GET}"
            )
        parts[name] = _parse_batch(_read_file(path), str(path))
    return _join(parts)


class _BoundedReader:
    """Reads a decompressed stream, refusing to go past ``limit`` bytes in all, so that a
    gzip bomb or a tar entry declaring a huge size stops there instead of filling memory."""

    def __init__(self, stream, limit: int):
        self.stream, self.limit, self.done = stream, limit, 0

    def read(self, n: int) -> bytes:
        if self.done + n > self.limit:
            raise _Damaged(
                f"it unpacks to more than {self.limit / 1e6:.0f} MB, while CIFAR-10 "
                "unpacks to 187 MB: it is damaged or not the CIFAR-10 archive"
            )
        data = self.stream.read(n)
        self.done += len(data)
        if len(data) != n:
            raise _Damaged("it ends in the middle of a file (truncated)")
        return data

    def skip(self, n: int) -> None:
        while n > 0:
            n -= len(self.read(min(n, 1 << 20)))


def _tar_header(header: bytes) -> tuple[str, int, bool]:
    """``(path, size, is a regular file)`` from one 512-byte ustar/GNU tar header."""
    checksum = sum(header[:148]) + 8 * 32 + sum(header[156:])
    high = sum(b >= 128 for b in header[:148] + header[156:])
    field = header[124:136]
    try:
        declared = int(header[148:156].strip(b" \0") or b"-1", 8)
        size = (
            int.from_bytes(field[1:], "big")
            if field[0] & 0x80
            else int(field.strip(b" \0") or b"0", 8)
        )
    except ValueError:
        declared = size = -1
    if declared not in (checksum, checksum - 256 * high) or size < 0:
        raise _Damaged("a tar header is damaged")
    name = header[:100].split(b"\0")[0]
    if header[257:263] == b"ustar\0" and header[345]:
        name = header[345:500].split(b"\0")[0] + b"/" + name
    return name.decode("utf-8", "replace"), size, header[156:157] in (b"0", b"\0", b"7")


def _tar_entries(stream: _BoundedReader):
    """Walk a tar stream: yield ``(path, size, is a regular file)`` per entry, with the
    stream at the start of the entry's data; whatever the caller leaves unread is skipped."""
    while True:
        try:
            header = stream.read(_TAR_BLOCK)
        except _Damaged:
            if stream.done % _TAR_BLOCK == 0:  # the stream ended between entries
                return
            raise
        if not any(header):  # the end-of-archive marker
            return
        path, size, regular = _tar_header(header)
        start = stream.done
        yield path, size, regular
        stream.skip(start + -(-size // _TAR_BLOCK) * _TAR_BLOCK - stream.done)


def _read_archive(archive: Path) -> tuple[np.ndarray, ...]:
    wanted = {f"{BATCHES_DIR}/{name}": name for name in (*TRAIN_FILES, TEST_FILE)}
    parts = {}
    try:
        with gzip.open(archive, "rb") as unpacked:
            stream = _BoundedReader(unpacked, _MAX_ARCHIVE_BYTES)
            for path, size, regular in _tar_entries(stream):
                name = wanted.get(path.removeprefix("./")) if regular else None
                if name is None or name in parts:
                    continue
                label = f"{archive}!{BATCHES_DIR}/{name}"
                if size > _MAX_FILE_BYTES:
                    raise _too_big(label, size)
                parts[name] = _parse_batch(stream.read(size), label)
                if len(parts) == len(wanted):
                    break
    except (_Damaged, OSError, EOFError, zlib.error) as err:
        raise CifarDataError(
            f"{archive} is not a readable .tar.gz ({err}). Delete it and get it again. "
            f"{_HOW_TO_GET}"
        ) from err
    for name in wanted.values():
        if name not in parts:
            raise CifarDataError(
                f"{archive}!{BATCHES_DIR}/{name} is missing from the archive. {_HOW_TO_GET}"
            )
    return _join(parts)


def _join(parts: dict) -> tuple[np.ndarray, ...]:
    x_train = np.concatenate([parts[n][0] for n in TRAIN_FILES])
    y_train = np.concatenate([parts[n][1] for n in TRAIN_FILES])
    x_test, y_test = parts[TEST_FILE]
    parts.clear()
    _release_freed_memory()
    return x_train, y_train, x_test, y_test


def _release_freed_memory() -> None:
    """Give the batch files' freed read buffers back to the operating system.

    glibc keeps large freed buffers for reuse, which here leaves about 170 MB
    of dead memory in the process after loading; on Binder's 2 GB that matters.
    Elsewhere (macOS, Windows, musl) this does nothing.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


# --- finding the data ------------------------------------------------------------------------


def _resolve(location: Path, origin: str) -> Path:
    """Map a user-given path to a batches folder or an archive, or explain what is wrong."""
    if not location.exists():
        raise CifarDataError(f"{origin} points at {location}, which does not exist. {_HOW_TO_GET}")
    if location.is_file():
        return location
    for candidate in (location, location / BATCHES_DIR):
        if (candidate / TEST_FILE).exists() or any((candidate / f).exists() for f in TRAIN_FILES):
            return candidate
    if (location / ARCHIVE_NAME).is_file():
        return location / ARCHIVE_NAME
    raise CifarDataError(
        f"{origin} points at {location}, which holds neither {BATCHES_DIR}/ nor "
        f"{ARCHIVE_NAME}. {_HOW_TO_GET}"
    )


def _download() -> Path:
    """Fetch the archive into the Keras cache (``~/.keras/datasets``), once, checksummed."""
    import keras

    origin = ORIGIN

    try:
        path = keras.utils.get_file(
            fname=ARCHIVE_NAME, origin=origin, file_hash=ARCHIVE_SHA256, hash_algorithm="sha256"
        )
    except Exception as err:  # urllib, SSL and checksum errors all land here
        raise CifarDataError(
            f"CIFAR-10 is not available offline and the download from {origin} failed "
            f"({type(err).__name__}: {err}). {_HOW_TO_GET}"
        ) from err
    return Path(path)


def describe_source(data_dir: str | os.PathLike | None = None) -> str:
    """Say where ``load_cifar10(data_dir)`` will read CIFAR-10 from, without reading it."""
    if data_dir is not None:
        return f"{data_dir} (argument)"
    if os.environ.get(DIR_ENV):
        return f"{os.environ[DIR_ENV]} ({DIR_ENV}, local mirror)"
    return f"Keras download cache (~/.keras/datasets/{ARCHIVE_NAME}, fetched once from {ORIGIN})"


def load_cifar10(
    data_dir: str | os.PathLike | None = None,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = config.DEFAULT_SEED,
) -> Cifar10:
    """Load CIFAR-10 as uint8 arrays, optionally as stratified slices of each split.

    ``data_dir`` (or ``CIFAR10_DIR``) may be the ``cifar-10-batches-py`` folder, a
    folder holding it or the archive, or the ``cifar-10-python.tar.gz`` archive;
    with neither, the official archive is downloaded once into the Keras cache.
    ``train_size``/``test_size`` keep that many images, with every class in
    the same proportion (see ``stratified_subset``). Raises ``CifarDataError``
    with what to do when the data is missing or damaged.
    """
    if data_dir is not None:
        origin = "data_dir"
        location = _resolve(Path(data_dir).expanduser(), origin)
    elif os.environ.get(DIR_ENV):
        origin = DIR_ENV
        location = _resolve(Path(os.environ[DIR_ENV]).expanduser(), origin)
    else:
        origin = "download"
        location = _download()
    if location.is_file():
        x_train, y_train, x_test, y_test = _read_archive(location)
    else:
        x_train, y_train, x_test, y_test = _read_batches_dir(location)
    dataset = Cifar10(x_train, y_train, x_test, y_test, CLASS_NAMES, f"{location} ({origin})")
    return subset(dataset, train_size=train_size, test_size=test_size, seed=seed)


def load_course_data(data_dir: str | os.PathLike | None = None) -> Cifar10:
    """CIFAR-10 at the size of the current mode: whole in the full course, a small
    stratified slice with ``COURSE_FAST=1`` (see ``helpers.config``)."""
    mode = config.current_mode()
    return load_cifar10(data_dir, train_size=mode.train_size, test_size=mode.test_size)


def channel_stats(images: np.ndarray, chunk: int = 1_000) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of uint8 images, in pixel units (0-255).

    Works through the images a chunk at a time, so it never holds a float copy
    of the whole dataset (50,000 images as float64 would take 1.2 GB).
    """
    if getattr(images, "ndim", 0) != 4 or images.shape[-1] != 3 or len(images) == 0:
        raise ValueError(
            "channel_stats needs a non-empty array of colour images, shape (N, height, width, "
            f"3), got shape {getattr(images, 'shape', type(images).__name__)}"
        )
    total = np.zeros(3)
    total_sq = np.zeros(3)
    for start in range(0, len(images), chunk):
        block = images[start : start + chunk].reshape(-1, 3).astype(np.float64)
        total += block.sum(axis=0)
        total_sq += (block**2).sum(axis=0)
    count = len(images) * images.shape[1] * images.shape[2]
    mean = total / count
    return mean, np.sqrt(total_sq / count - mean**2)


def memory_table(n_images: int, shape: tuple[int, ...] = (32, 32, 3)):
    """How much memory ``n_images`` take as uint8, float32 and float64 (a pandas DataFrame)."""
    import pandas as pd

    if isinstance(n_images, bool) or not isinstance(n_images, int | np.integer) or n_images < 0:
        raise ValueError(f"n_images must be a whole number of images (0 or more), got {n_images!r}")
    values = n_images * int(np.prod(shape))
    rows = [
        {
            "dtype": name,
            "bytes per value": np.dtype(name).itemsize,
            "MB": values * np.dtype(name).itemsize / 1e6,
        }
        for name in ("uint8", "float32", "float64")
    ]
    return pd.DataFrame(rows).set_index("dtype")


# --- splitting -------------------------------------------------------------------------------


def _class_counts(x, y, what: str) -> tuple[np.ndarray, np.ndarray]:
    """The classes in ``y`` and how many examples each has, once ``x`` and ``y`` agree."""
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(
            f"{what} needs y with one integer label per example, shape (N,) with N > 0; got "
            f"shape {y.shape}. For one-hot labels pass y.argmax(axis=1)"
        )
    if len(x) != len(y):
        raise ValueError(
            f"{what}: x has {len(x)} examples but y has {len(y)} labels; pass the images and "
            "the labels of the same split"
        )
    return np.unique(y, return_counts=True)


def _two_of_each(classes: np.ndarray, counts: np.ndarray, what: str) -> None:
    """Refuse a stratified split when some class has a single example."""
    if counts.min() < 2:
        label = classes[counts.argmin()].item()
        raise ValueError(
            f"{what}: class {label!r} has only 1 example, but a stratified split puts every "
            "class on both sides, so each class needs at least two examples. Add examples of "
            f"class {label!r} or leave it out of x and y"
        )


def stratified_subset(
    x: np.ndarray, y: np.ndarray, size: int, seed: int = config.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``size`` examples with the class proportions of ``y`` (seeded, reproducible)."""
    from sklearn.model_selection import train_test_split

    classes, counts = _class_counts(x, y, "stratified_subset")
    n_classes = len(classes)
    if isinstance(size, bool) or not isinstance(size, int | np.integer):
        raise ValueError(f"subset size must be an integer, got {size!r}")
    if not n_classes <= size <= len(y):
        raise ValueError(
            f"subset size must be between {n_classes} (one per class) and {len(y)} "
            f"(all examples), got {size}"
        )
    if size == len(y):
        return x, y
    if len(y) - size < n_classes:
        raise ValueError(
            f"subset size {size} of {len(y)} leaves out fewer examples than there are classes "
            f"({n_classes}), which a stratified draw cannot do; keep all {len(y)} or at most "
            f"{len(y) - n_classes}"
        )
    _two_of_each(classes, counts, "stratified_subset")
    keep, _ = train_test_split(
        np.arange(len(y)), train_size=int(size), stratify=y, random_state=seed
    )
    keep.sort()
    return x[keep], y[keep]


def subset(
    dataset: Cifar10,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = config.DEFAULT_SEED,
) -> Cifar10:
    """A copy of ``dataset`` with stratified slices of its train and/or test split."""
    x_train, y_train, x_test, y_test = (
        dataset.x_train,
        dataset.y_train,
        dataset.x_test,
        dataset.y_test,
    )
    if train_size is not None:
        x_train, y_train = stratified_subset(x_train, y_train, train_size, seed)
    if test_size is not None:
        x_test, y_test = stratified_subset(x_test, y_test, test_size, seed)
    return replace(dataset, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def train_val_split(
    x: np.ndarray, y: np.ndarray, val_fraction: float = 0.1, seed: int = config.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into ``(x_train, y_train, x_val, y_val)`` with the same class balance in both.

    A stratified split keeps each class at 10% of the validation set, so its
    accuracy is not skewed by chance; the seed makes the split reproducible.
    """
    from sklearn.model_selection import train_test_split

    if isinstance(val_fraction, bool) or not isinstance(val_fraction, float | int):
        raise ValueError(f"val_fraction must be a number between 0 and 1, got {val_fraction!r}")
    if not 0 < val_fraction < 1:
        raise ValueError(
            f"val_fraction must be strictly between 0 and 1 (e.g. 0.1 for 10%), got {val_fraction}"
        )
    classes, counts = _class_counts(x, y, "train_val_split")
    _two_of_each(classes, counts, "train_val_split")
    n_classes = len(classes)
    n_val = int(np.ceil(val_fraction * len(y)))
    if n_val < n_classes or len(y) - n_val < n_classes:
        raise ValueError(
            f"val_fraction={val_fraction} of {len(y)} examples leaves fewer than one example "
            f"per class ({n_classes}) on one side; use more data or a fraction nearer 0.5"
        )
    x_tr, x_val, y_tr, y_val = train_test_split(
        x, y, test_size=val_fraction, stratify=y, random_state=seed
    )
    return x_tr, y_tr, x_val, y_val
