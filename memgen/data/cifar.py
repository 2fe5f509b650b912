"""CIFAR-10 from the user's own copy of the standard archives, without trusting pickle.

Two formats are read, as folders or as the ``.tar.gz`` archives themselves (members are read in memory,
nothing is extracted):

* binary (``cifar-10-batches-bin/`` or ``cifar-10-binary.tar.gz``): ``data_batch_{1..5}.bin`` and
  ``test_batch.bin``, each a sequence of 3073-byte records: 1 label byte, then the 32x32 red, green and
  blue planes (1024 bytes each, row-major). Read with ``numpy.frombuffer``: no pickle at all.
* python (``cifar-10-batches-py/`` or ``cifar-10-python.tar.gz``): pickled dicts with ``data`` (uint8
  ``[10000, 3072]``, same layout) and ``labels``, read through :class:`RestrictedUnpickler`, which builds
  nothing but numpy arrays of plain numeric dtypes, lists, dicts, tuples, numbers, bytes and strings.

Class names come from ``batches.meta.txt`` / ``batches.meta`` when present, else the standard ten.

Hostile copies are refused before anything large is allocated: a file or archive member larger than
:data:`MAX_BYTES` (its size as stored, or as the tar header declares it: a 2 MB ``.tar.gz`` can hold a 2 GB
batch), an archive of more than :data:`MAX_MEMBERS` members, and a pickled array whose declared shape holds
more bytes than its pickle does (a 170-byte pickle may ask numpy for GiBs).
"""
from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import torch

from memgen.checks import flag, integer, path

from .dataset import Dataset
from .files import from_uint8, limit_param
from .split import seeded_split

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
URL = "https://www.cs.toronto.edu/~kriz/"
FORMATS = {  # format: (folder, archive, batch suffix, meta file)
    "binary": ("cifar-10-batches-bin", "cifar-10-binary.tar.gz", ".bin", "batches.meta.txt"),
    "python": ("cifar-10-batches-py", "cifar-10-python.tar.gz", "", "batches.meta"),
}
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]
RECORD = 1 + 3 * 32 * 32
ARCHIVE_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)
MAX_BYTES = 2 ** 26
"""Largest file of a CIFAR-10 copy that is read (64 MiB; a standard batch is 31 MB); raise it with
``cifar10(..., max_bytes=...)``. Checked on sizes as stored or declared, before reading."""
MAX_MEMBERS = 1000
"""Most members a CIFAR-10 archive may hold (the standard ones hold 8 or 9)."""


def _latin1_encode(text, encoding="latin1"):
    """What protocol-2 pickles written by Python 3 use for bytes: ``_codecs.encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refused _codecs.encode call other than str.encode('latin1')")
    return text.encode("latin1")


def _plain_dtype(*args):
    d = np.dtype(*args)
    if d.hasobject:
        raise pickle.UnpicklingError(f"refused numpy dtype {d} holding Python objects")
    return d


class _NdarrayName:
    """``numpy.ndarray`` as a pickle names it: only the type argument of ``_reconstruct``. Calling it, which
    would allocate any shape the pickle asks for, is refused."""

    def __call__(self, *args, **kwargs):
        raise pickle.UnpicklingError("refused a call of numpy.ndarray: a CIFAR-10 batch names it only as the "
                                     "type of numpy's _reconstruct")


_NDARRAY = _NdarrayName()
# numpy's own array rebuilders, taken from its reduce tuples (their module moved between numpy 1 and 2)
_RECONSTRUCT = np.zeros(0).__reduce__()[0]          # protocols 0-4: _reconstruct(ndarray, shape, dtype) + state
_FROMBUFFER = np.zeros(0).__reduce_ex__(5)[0]       # protocol 5: _frombuffer(buffer, dtype, shape, order)
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _plain_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals needed to rebuild plain numpy arrays.

    Any other global (``os.system``, ``builtins.eval``, a class, ...) raises ``pickle.UnpicklingError``
    before it is called, so a crafted file cannot run code. Python 2 strings decode as latin-1. Arrays are
    bounded before numpy allocates them: ``_reconstruct`` may not ask for more than ``max_bytes`` (the
    pickle's own size in :func:`safe_unpickle`: an array's data must come from the pickle), ``_frombuffer``
    views data the pickle holds, and ``ndarray.__setstate__`` checks its data's length.
    """

    def __init__(self, file, max_bytes: int):
        super().__init__(file, encoding="latin1")
        self.max_bytes = max_bytes

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refused global {module}.{name}: a CIFAR-10 batch holds only arrays, "
                                         "lists, dicts, bytes and strings")
        found = _ALLOWED[(module, name)]
        return self._reconstruct if found is _RECONSTRUCT else found

    def _reconstruct(self, subtype, shape, dtype):
        """numpy's ``_reconstruct(ndarray, shape, dtype)``, refused for another type or more than ``max_bytes``."""
        if subtype is not _NDARRAY:
            raise pickle.UnpicklingError(f"refused an array of type {subtype!r}: only numpy.ndarray")
        dims = shape if isinstance(shape, tuple) else (shape,)
        if not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in dims):
            raise pickle.UnpicklingError(f"refused array shape {shape!r}: expected non-negative integers")
        nbytes = int(np.prod(dims, dtype=object)) * _plain_dtype(dtype).itemsize
        if nbytes > self.max_bytes:
            raise pickle.UnpicklingError(f"refused an array of shape {shape} ({nbytes} bytes): more than the "
                                         f"{self.max_bytes} bytes the pickle can hold")
        return _RECONSTRUCT(np.ndarray, shape, dtype)


MAX_DEPTH = 8
"""Deepest nesting of containers accepted in a pickled batch (CIFAR-10's dicts of lists are 2 deep)."""
MAX_ITEMS = 10 ** 6
"""Most items a pickled batch may hold once shared containers are counted at every place they appear
(a CIFAR-10 batch holds about 2 x 10^4: its labels and file names)."""


def _check_plain(obj, where: str):
    """Refuse anything but numeric arrays, lists, tuples, dicts, numbers, bytes and strings.

    Pickle can share one container many times (``l = [l, l]`` nested k deep unfolds to 2^k items), so each
    container is visited once (time linear in the number of distinct objects) while its unfolded size
    ``1 + sum(size of children)`` is accumulated; nesting deeper than :data:`MAX_DEPTH`, an unfolded size
    above :data:`MAX_ITEMS` and cycles are refused before anything (such as ``numpy.asarray``) unfolds it.
    """
    size: dict[int, int] = {}                        # id -> unfolded size of a finished container
    open_ids: set[int] = set()                       # containers on the current path (a repeat is a cycle)
    stack = [(obj, 0, False)]
    while stack:
        o, depth, finished = stack.pop()
        if isinstance(o, (list, tuple, dict)):
            children = [*o.keys(), *o.values()] if isinstance(o, dict) else o
            if finished:
                open_ids.discard(id(o))
                size[id(o)] = 1 + sum(size.get(id(c), 1) for c in children)
                if size[id(o)] > MAX_ITEMS:
                    raise ValueError(f"{where}: refused a container that unfolds to more than {MAX_ITEMS} items")
                continue
            if id(o) in size:
                continue
            if id(o) in open_ids:
                raise ValueError(f"{where}: refused a container that holds itself")
            if depth >= MAX_DEPTH:
                raise ValueError(f"{where}: refused containers nested more than {MAX_DEPTH} deep")
            open_ids.add(id(o))
            stack.append((o, depth, True))
            stack.extend((c, depth + 1, False) for c in children)
        elif isinstance(o, np.ndarray):
            if o.dtype.kind not in "biuf":
                raise ValueError(f"{where}: refused an array of dtype {o.dtype}")
        elif o is not None and not isinstance(o, (bytes, str, int, float, bool)):
            raise ValueError(f"{where}: refused an object of type {type(o).__name__}")


def safe_unpickle(data: bytes, where: str = "pickle"):
    """Load ``data`` with :class:`RestrictedUnpickler` (no array larger than ``data`` itself); a refused or
    malformed file raises ValueError."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), len(data)).load()
        _check_plain(obj, where)
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError,
            RecursionError) as e:
        raise ValueError(f"{where}: refused to unpickle ({e})") from e
    return obj


def _missing(root: Path) -> FileNotFoundError:
    return FileNotFoundError(
        f"root: no CIFAR-10 copy under {root}. Download the binary version {URL}cifar-10-binary.tar.gz "
        f"(or the python version {URL}cifar-10-python.tar.gz) and put the archive, or the folder "
        f"cifar-10-batches-bin/ (cifar-10-batches-py/) it unpacks to, in {root}.")


def _too_large(where: str, size: int, max_bytes: int) -> ValueError:
    return ValueError(f"root: {where} holds {size} bytes, over the limit of {max_bytes} bytes (a CIFAR-10 batch "
                      "is 31 MB); pass a larger max_bytes to read it")


def _members(tar: tarfile.TarFile, path: Path, max_bytes: int):
    """The members of an open archive, each checked on its header before its data is read or skipped: at
    most :data:`MAX_MEMBERS` of them, none larger than ``max_bytes``."""
    for count, member in enumerate(tar, 1):
        if count > MAX_MEMBERS:
            raise ValueError(f"root: {path} holds more than {MAX_MEMBERS} members; a CIFAR-10 archive holds 9")
        if member.size > max_bytes:
            raise _too_large(f"{path}: {member.name}", member.size, max_bytes)
        yield member


def _archive_format(path: Path, max_bytes: int) -> str | None:
    """The format of a CIFAR-10 ``.tar.gz`` from the folder its members sit in (None: not CIFAR-10)."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            tops = {m.name.split("/")[0] for m in _members(tar, path, max_bytes)}
    except ARCHIVE_ERRORS as e:
        raise ValueError(f"root: {path} is not a readable .tar.gz archive ({type(e).__name__}: {e})") from e
    return next((fmt for fmt, (folder, *_) in FORMATS.items() if folder in tops), None)


class _Source:
    """The files of one CIFAR-10 copy: a folder or a .tar.gz archive, in one of the two formats.

    Looked for in this order: ``root`` itself (a batches folder or an archive), then the binary folder,
    the python folder, the binary archive and the python archive inside ``root``.
    """

    def __init__(self, root, max_bytes: int):
        root = Path(root)
        self.max_bytes = max_bytes
        found = None
        if root.is_file():
            found = (root, _archive_format(root, max_bytes), "archive")
            if found[1] is None:
                raise ValueError(f"root: {root} holds neither cifar-10-batches-bin/ nor cifar-10-batches-py/")
        elif root.is_dir():
            found = next(((root, fmt, "folder") for fmt, (folder, *_) in FORMATS.items() if root.name == folder),
                         None)
            found = found or next(((root / folder, fmt, "folder") for fmt, (folder, *_) in FORMATS.items()
                                   if (root / folder).is_dir()), None)
            found = found or next(((root / archive, fmt, "archive") for fmt, (_, archive, *_) in FORMATS.items()
                                   if (root / archive).is_file()), None)
        if found is None:
            raise _missing(root)
        self.path, self.format, self.kind = found

    def read(self, names: list[str]) -> dict[str, bytes]:
        """The contents of those files ``names`` that exist, by name (one pass over an archive), each checked
        against ``max_bytes`` before it is read."""
        if self.kind == "folder":
            return {n: self._read_file(self.path / n) for n in names if (self.path / n).is_file()}
        folder = FORMATS[self.format][0]
        wanted = {f"{folder}/{n}": n for n in names}
        out = {}
        try:
            with tarfile.open(self.path, "r:gz") as tar:
                for member in _members(tar, self.path, self.max_bytes):
                    if member.isfile() and member.name in wanted:
                        out[wanted[member.name]] = tar.extractfile(member).read()
        except ARCHIVE_ERRORS as e:
            raise ValueError(f"root: {self.path} is a damaged .tar.gz archive ({type(e).__name__}: {e})") from e
        return out

    def _read_file(self, file: Path) -> bytes:
        size = file.stat().st_size
        if size > self.max_bytes:
            raise _too_large(str(file), size, self.max_bytes)
        return file.read_bytes()


def _binary_batch(data: bytes, where: str):
    if len(data) == 0 or len(data) % RECORD:
        raise ValueError(f"{where}: {len(data)} bytes is not a whole number of {RECORD}-byte CIFAR-10 records")
    rec = np.frombuffer(data, dtype=np.uint8).reshape(-1, RECORD)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def _key(d: dict, key: str, where: str):
    for k in (key, key.encode()):
        if k in d:
            return d[k]
    raise ValueError(f"{where}: the pickled dict has no {key!r} entry (keys: {list(d)})")


def _python_batch(data: bytes, where: str):
    d = safe_unpickle(data, where)
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a pickled dict, got {type(d).__name__}")
    images, labels = np.asarray(_key(d, "data", where)), np.asarray(_key(d, "labels", where))
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != RECORD - 1:
        raise ValueError(f"{where}: 'data' must be uint8 [N, {RECORD - 1}], got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
        raise ValueError(f"{where}: 'labels' must hold {len(images)} integers, got shape {labels.shape}")
    return images.reshape(-1, 3, 32, 32), labels.astype(np.int64)


def _class_names(src: _Source, meta: bytes | None) -> list[str]:
    if meta is None:
        return list(CLASSES)
    if src.format == "binary":
        return [line.strip() for line in meta.decode("latin1").splitlines() if line.strip()]
    names = _key(safe_unpickle(meta, "batches.meta"), "label_names", "batches.meta")
    return [n.decode("latin1") if isinstance(n, bytes) else str(n) for n in names]


def _resolve_classes(classes, names: list[str]) -> list[int]:
    wanted = [classes] if isinstance(classes, (str, int)) else list(classes)
    out = []
    for c in wanted:
        if isinstance(c, str) and c in names:
            out.append(names.index(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < len(names):
            out.append(int(c))
        else:
            raise ValueError(f"classes: {c!r} is not a CIFAR-10 class; expected a name or index of {names}")
    if not out or len(set(out)) != len(out):
        raise ValueError(f"classes: expected distinct class names or indices, got {classes!r}")
    return out


def cifar10(root, *, train: bool = True, classes=None, n: int | None = None, subset_seed: int | None = None,
            n_train: int | None = None, seed: int = 0, max_bytes: int = MAX_BYTES) -> Dataset:
    """CIFAR-10 images ``[N, 3, 32, 32]`` in [-1, 1] (``v / 127.5 - 1``) from a local copy under ``root``.

    ``root`` holds ``cifar-10-batches-bin/``, ``cifar-10-batches-py/`` or their ``.tar.gz`` archives (or is
    one of them); the binary format is preferred when both are present. ``train`` picks the 50k training
    batches (else the 10k test batch). ``classes`` keeps one class or a list (names such as
    ``"automobile"`` or indices 0..9); ``labels`` then index into ``classes`` in the order given.
    ``n`` keeps the first ``n`` images (in file order) or, with ``subset_seed``, a seeded random subset of
    ``n`` (kept in file order). ``n_train``/``seed`` split them (None: all train). ``max_bytes`` bounds each
    file read (:data:`MAX_BYTES`); ``params`` records it when it is not the default.
    """
    train = flag(train, "train")
    subset_seed = None if subset_seed is None else integer(subset_seed, "subset_seed", 0)
    max_bytes = integer(max_bytes, "max_bytes")
    src = _Source(path(root, "root"), max_bytes)
    _, archive, suffix, meta = FORMATS[src.format]
    stems = TRAIN_BATCHES if train else TEST_BATCHES
    files = src.read([s + suffix for s in stems] + [meta])
    missing = [s + suffix for s in stems if s + suffix not in files]
    if missing:
        raise FileNotFoundError(f"root: the CIFAR-10 copy {src.path} lacks {', '.join(missing)}; download the "
                                f"complete archive {URL}{archive} again")
    names = _class_names(src, files.get(meta))
    parse = _binary_batch if src.format == "binary" else _python_batch
    batches = [parse(files[s + suffix], f"{src.path}: {s + suffix}") for s in stems]
    x, y = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
    if y.max() >= len(names):
        raise ValueError(f"root: label {int(y.max())} in {src.path} lies outside the {len(names)} classes {names}")
    chosen = list(range(len(names))) if classes is None else _resolve_classes(classes, names)
    remap = np.full(len(names), -1)
    remap[chosen] = np.arange(len(chosen))
    y = remap[y]
    keep = np.flatnonzero(y >= 0)
    if n is not None:
        if integer(n, "n") > len(keep):
            raise ValueError(f"n: expected an integer in [1, {len(keep)}] (images available), got {n!r}")
        pick = (np.arange(int(n)) if subset_seed is None
                else np.sort(np.random.default_rng(subset_seed).choice(len(keep), int(n), replace=False)))
        keep = keep[pick]
    if len(keep) == 0:
        raise ValueError(f"classes: no image of {classes!r} in {src.path}")
    labels = torch.as_tensor(y[keep])
    return Dataset("cifar10", from_uint8(x[keep]), seeded_split(len(keep), n_train, seed), labels=labels,
                   classes=[names[k] for k in chosen],
                   params={"root": str(root), "train": bool(train), "classes": classes, "n": n,
                           "subset_seed": subset_seed, "n_train": n_train, "seed": seed,
                           **limit_param(max_bytes, MAX_BYTES)})
