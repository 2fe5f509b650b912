"""Data from the user's own files: any ``.npy``/``.npz`` array (or in-memory array), any folder of images.

8-bit data (``uint8``: images) is mapped to [-1, 1] by ``v / 127.5 - 1``; any other numeric array is
kept as it is (cast to float32). Array files are parsed by :func:`read_npy`, which reads plain numeric
arrays only: a file holding Python objects is refused, never unpickled, and a header that declares a
negative dimension, more data than the file holds, or more than :data:`MAX_BYTES` (a ``.npz`` member that
inflates to tens of GB) is refused before anything is allocated.
"""
from __future__ import annotations

import hashlib
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from memgen import checks
from memgen.checks import integer

from .dataset import Dataset
from .split import seeded_split

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
DATA_KEYS = ("x", "images", "data")
LABEL_KEYS = ("labels", "y")


def from_uint8(a: np.ndarray) -> torch.Tensor:
    """8-bit values ``v`` in {0..255} as float32 ``v / 127.5 - 1`` in [-1, 1]."""
    return torch.as_tensor(a.astype(np.float32) / np.float32(127.5) - 1)


def _as_data(a: np.ndarray, name: str) -> torch.Tensor:
    if a.dtype == np.uint8:
        return from_uint8(a)
    if a.dtype.kind not in "iuf":
        raise ValueError(f"{name}: expected an array of real numbers, got dtype {a.dtype}")
    t = torch.as_tensor(a.astype(np.float32))
    if not checks.all_finite(t):
        raise ValueError(f"{name}: contains NaN or inf")
    return t


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _labels(labels, n: int, name: str = "labels") -> torch.Tensor:
    lab = np.asarray(labels)
    if lab.shape != (n,) or lab.dtype.kind not in "iu" or (lab < 0).any():
        raise ValueError(f"{name}: expected {n} non-negative integer class labels, got shape {lab.shape}, "
                         f"dtype {lab.dtype}")
    return torch.as_tensor(lab.astype(np.int64))


NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")
MAX_BYTES = 4 * 2 ** 30
"""Largest array (4 GiB of data as stored) that :func:`from_array` reads from a file; raise it with
``from_array(..., max_bytes=...)``. Checked on the header's declared shape, before anything is read."""


def limit_param(max_bytes: int, default: int) -> dict:
    """``{"max_bytes": max_bytes}`` for a loader's ``params`` when it differs from the loader's ``default``, else
    ``{}``: a rebuild from params then reads under the same limit, and default calls keep their params."""
    return {} if max_bytes == default else {"max_bytes": max_bytes}


def read_npy(f, size: int, where: str, max_bytes: int = MAX_BYTES) -> np.ndarray:
    """One ``.npy`` array from the binary stream ``f`` holding ``size`` bytes, without trusting its header.

    Refused with a ValueError naming ``where``: a dtype other than plain booleans, integers or floats
    (object arrays would need pickle), a negative dimension, and a header whose shape declares more bytes
    than the stream holds or than ``max_bytes`` (so neither a forged header nor a zip bomb can make us
    allocate 10^15 elements).
    """
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy format version {version}")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f, max_header_size=10000)
    except (ValueError, TypeError, SyntaxError, EOFError) as e:
        raise ValueError(f"{where} has no valid .npy header ({e})") from e
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ValueError(f"{where} holds an array of dtype {dtype}: only plain numbers are read "
                         "(object arrays are refused, never unpickled)")
    if any(k < 0 for k in shape):
        raise ValueError(f"{where} declares shape {shape}, with a negative dimension")
    count = int(np.prod(shape, dtype=object)) if shape else 1
    nbytes, left = count * dtype.itemsize, size - f.tell()
    if nbytes > left:
        raise ValueError(f"{where} declares shape {shape} ({nbytes} bytes) but holds only {left} bytes of data")
    if nbytes > max_bytes:
        raise ValueError(f"{where} declares shape {shape} ({nbytes} bytes), over the limit of {max_bytes} bytes;"
                         " pass a larger max_bytes to read it")
    buf = bytearray()                        # grown as data arrives: a forged .npz member size allocates nothing
    while len(buf) < nbytes:
        chunk = f.read(min(nbytes - len(buf), 2 ** 26))
        if not chunk:
            raise ValueError(f"{where} ends after {len(buf)} of its {nbytes} bytes of data")
        buf += chunk
    return np.frombuffer(buf, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _load_file(path: Path, labels, max_bytes: int):
    """The data array (and labels) of a ``.npy``/``.npz`` file, read by :func:`read_npy` (no pickle, no trust;
    each array at most ``max_bytes``)."""
    if not path.is_file():
        raise FileNotFoundError(f"path_or_array: no file {path}")
    where = f"path_or_array: {path}"
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            f.seek(0)
            if magic.startswith(NPY_MAGIC):
                return read_npy(f, path.stat().st_size, where, max_bytes), labels
            if not magic.startswith(ZIP_MAGIC):
                raise ValueError(f"{where} is not a .npy/.npz array file (pickled data is refused, never loaded)")
            with zipfile.ZipFile(f) as zf:
                members = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}

                def read(key, arg="path_or_array"):
                    with zf.open(members[key]) as m:
                        return read_npy(m, members[key].file_size, f"{arg}: {path}[{key!r}]", max_bytes)

                keys = list(members)
                key = next((k for k in DATA_KEYS if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise ValueError(f"{where} holds arrays {keys}; name the data 'x' (or one of {DATA_KEYS})")
                if isinstance(labels, str):
                    if labels not in keys:
                        raise ValueError(f"labels: {path} has no array {labels!r}; it holds {keys}")
                    labels = read(labels, "labels")
                elif labels is None:
                    labels = next((read(k, "labels") for k in LABEL_KEYS if k in keys), None)
                return read(key), labels
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as e:
        raise ValueError(f"{where} is not a readable .npy/.npz file ({type(e).__name__}: {e})") from e


def from_array(path_or_array, *, labels=None, n_train: int | None = None, seed: int = 0,
               max_bytes: int = MAX_BYTES) -> Dataset:
    """A data set ``[N, *shape]`` from a ``.npy``/``.npz`` file or an in-memory numpy array / tensor.

    In a ``.npz`` the data is the array named ``x`` (or ``images``, ``data``, or the only array) and the
    labels, unless given, the array ``labels`` (or ``y``) when present; ``labels`` may also name an array
    of the ``.npz``, or be an integer array ``[N]``. ``uint8`` data maps to [-1, 1] (``v / 127.5 - 1``).
    ``n_train``/``seed`` make a seeded split (None: all train). ``params`` records the path, or, for an
    in-memory array (and for given label arrays), the shape and SHA-256 of its bytes, so that a re-run can
    check it uses the same data. 16-bit float tensors (bfloat16, float16) are read as float32. ``max_bytes`` bounds
    each array read from a file (:data:`MAX_BYTES`); ``params`` of a file record it when it is not the default.
    """
    max_bytes = integer(max_bytes, "max_bytes")
    if isinstance(path_or_array, (str, Path)):
        path = Path(path_or_array)
        a, lab = _load_file(path, labels, max_bytes)
        source = {"path_or_array": str(path), **limit_param(max_bytes, MAX_BYTES)}
    elif isinstance(path_or_array, (np.ndarray, torch.Tensor)):
        a = path_or_array
        if isinstance(a, torch.Tensor):                   # 16-bit floats (numpy has no bfloat16) as float32
            a = a.detach().cpu()
            a = (a.float() if a.dtype in (torch.bfloat16, torch.float16) else a).numpy()
        if isinstance(labels, str):
            raise ValueError("labels: a name of an array only works with a .npz file; pass the labels array")
        lab, source = labels, {"path_or_array": None, "shape": list(a.shape), "sha256": _sha256(a)}
    else:
        raise TypeError(f"path_or_array: expected a path or a numpy array, got {type(path_or_array).__name__}")
    if a.ndim < 2 or a.shape[0] == 0:
        raise ValueError(f"path_or_array: expected a non-empty array [N, *shape] (at least 2-D), got shape {a.shape}")
    x = _as_data(a, "path_or_array")
    lab = None if lab is None else _labels(lab, len(x))
    if labels is None or isinstance(labels, str):
        source["labels"] = labels
    else:
        source["labels_sha256"] = _sha256(np.asarray(labels))
    return Dataset("from_array", x, seeded_split(len(x), n_train, seed), labels=lab,
                   classes=None if lab is None else [str(k) for k in range(int(lab.max()) + 1)],
                   params={**source, "n_train": n_train, "seed": seed})


SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N")
"""Pillow's modes of 16-bit single-channel images (a 16-bit grayscale PNG)."""


def _pixels(im, p: Path, size: int | None) -> np.ndarray:
    """One opened image as float32 RGB ``[3, H, W]`` in [-1, 1]: ``v / (M / 2) - 1`` with ``M`` the full scale
    of its bit depth (255, or 65535 for a 16-bit image, which 8-bit RGB would clip). Images of 32-bit
    integers or floats (Pillow modes I and F, other than a PNG's 16 bits) have no stated full scale and
    are refused."""
    from PIL import Image
    if im.mode in SIXTEEN_BIT_MODES or (im.mode == "I" and im.format == "PNG"):   # older Pillow: PNG 16-bit is I
        im, full = im.convert("F"), 65535
    elif im.mode in ("I", "F"):
        raise ValueError(f"path: {p} holds 32-bit {'integer' if im.mode == 'I' else 'float'} pixels (mode "
                         f"{im.mode}), whose full scale is unknown; save it as 8- or 16-bit")
    else:
        im, full = im.convert("RGB"), 255
    if size is not None:
        im = im.resize((size, size), Image.BICUBIC)
    a = np.asarray(im, dtype=np.float32)
    a = np.repeat(a[None], 3, 0) if a.ndim == 2 else a.transpose(2, 0, 1)
    return a / np.float32(full / 2) - 1


def image_folder(path, *, size: int | None = None, n_train: int | None = None, seed: int = 0) -> Dataset:
    """Every image file under ``path`` (sorted by path) as RGB ``[N, 3, H, W]`` in [-1, 1].

    Images directly in ``path`` are unlabelled; images in sub-folders are labelled by the name of their
    top-level sub-folder (``classes`` sorted by name), as in the usual one-folder-per-class layout.
    Pixel values ``v`` map to ``v / (M / 2) - 1`` with ``M`` the full scale of the image's bit depth: 255,
    or 65535 for 16-bit images (grayscale 16-bit PNG), so that both span [-1, 1]; 32-bit and float images
    are refused. ``size`` resizes every image to ``size x size`` (bicubic); without it all images must
    share one size. Needs Pillow (installed with matplotlib).
    """
    try:
        from PIL import Image
    except ImportError as e:
        raise ImportError("image_folder needs Pillow: pip install pillow") from e
    root = checks.path(path, "path")
    if not root.is_dir():
        raise FileNotFoundError(f"path: no folder {root}")
    size = None if size is None else integer(size, "size")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"path: no image files ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    groups = [p.relative_to(root).parts[0] if len(p.relative_to(root).parts) > 1 else None for p in files]
    if len(set(g is None for g in groups)) > 1:
        raise ValueError(f"path: {root} mixes images at its top level with class sub-folders; use one layout")
    x = None
    for i, p in enumerate(files):
        try:
            with Image.open(p) as im:
                a = _pixels(im, p, size)
        except OSError as e:
            raise ValueError(f"path: cannot read image {p}: {e}") from e
        if x is None:
            x = np.empty((len(files), *a.shape), np.float32)        # filled in place: one copy of the data
        if a.shape != x.shape[1:]:
            raise ValueError(f"path: {p} is {a.shape[2]}x{a.shape[1]} but {files[0]} is "
                             f"{x.shape[3]}x{x.shape[2]}; pass size= to resize all images")
        x[i] = a
    x = torch.from_numpy(x)
    labels = classes = None
    if groups[0] is not None:
        classes = sorted(set(groups))
        labels = torch.as_tensor([classes.index(g) for g in groups], dtype=torch.int64)
    return Dataset("image_folder", x, seeded_split(len(x), n_train, seed), labels=labels, classes=classes,
                   params={"path": str(root), "size": size, "n_train": n_train, "seed": seed})
