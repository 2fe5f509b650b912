"""CIFAR-10 loaders on small archives written here in both formats (folders and .tar.gz), and pickle safety."""
import io
import os
import pickle
import re
import tarfile

import numpy as np
import pytest

from memgen.data import cifar10, load
from memgen.data.cifar import CLASSES, safe_unpickle

PER_BATCH = 12
NAMES = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_batches(seed=0):
    """Six batches (5 train, 1 test) of random uint8 images [PER_BATCH, 3, 32, 32] and labels 0..9."""
    rng = np.random.default_rng(seed)
    stems = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return {s: (rng.integers(0, 256, (PER_BATCH, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, PER_BATCH))
            for s in stems}


def binary_record_bytes(images, labels):
    """The documented layout: per image one label byte, then the R, G and B planes of 1024 bytes, row-major."""
    out = bytearray()
    for img, lab in zip(images, labels):
        out.append(int(lab))
        for c in range(3):
            out += bytes(img[c].flatten().tolist())
    return bytes(out)


class Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` and ``str`` as Python 2 ``str`` (BINSTRING), as the cPickle-made CIFAR batches are."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        n = len(raw)
        self.write((pickle.SHORT_BINSTRING + bytes([n]) if n < 256
                    else pickle.BINSTRING + n.to_bytes(4, "little")) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def pickle_bytes(obj, protocol):
    if protocol == "py2":
        buf = io.BytesIO()
        Py2Pickler(buf, protocol=2).dump(obj)
        # numpy 1 (and Python 2's numpy) name the array rebuilder numpy.core.multiarray._reconstruct
        return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    return pickle.dumps(obj, protocol=protocol)


def tar_gz(path, folder, files: dict):
    """A ``.tar.gz`` at ``path`` holding ``folder/<name>`` for each ``name -> bytes`` of ``files``."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{folder}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_copy(root, batches, fmt, *, archive=False, protocol="py2", names=NAMES, skip=()):
    """Write a CIFAR-10 copy under ``root`` (folder, or .tar.gz when ``archive``); returns its path."""
    folder = {"binary": "cifar-10-batches-bin", "python": "cifar-10-batches-py"}[fmt]
    files = {}
    for stem, (x, y) in batches.items():
        if stem in skip:
            continue
        if fmt == "binary":
            files[stem + ".bin"] = binary_record_bytes(x, y)
        else:
            d = {b"batch_label": b"batch " + stem.encode(), b"labels": [int(v) for v in y],
                 b"data": x.reshape(len(x), -1), b"filenames": [b"img%d.png" % i for i in range(len(x))]}
            files[stem] = pickle_bytes(d, protocol)
    if names is not None:
        if fmt == "binary":
            files["batches.meta.txt"] = ("\n".join(names) + "\n\n").encode()
        else:
            files["batches.meta"] = pickle_bytes({b"label_names": [n.encode() for n in names],
                                                  b"num_vis": 3072}, protocol)
    if archive:
        path = root / {"binary": "cifar-10-binary.tar.gz", "python": "cifar-10-python.tar.gz"}[fmt]
        return tar_gz(path, folder, files)
    (root / folder).mkdir(parents=True)
    for name, data in files.items():
        (root / folder / name).write_bytes(data)
    return root / folder


def expected(batches, train):
    stems = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    x = np.concatenate([batches[s][0] for s in stems]).astype(np.float64) / 127.5 - 1
    return x, np.concatenate([batches[s][1] for s in stems])


@pytest.mark.parametrize("fmt,archive,protocol", [("binary", False, None), ("binary", True, None),
                                                  ("python", False, "py2"), ("python", True, "py2"),
                                                  ("python", False, 2), ("python", False, 4),
                                                  ("python", False, 5)])
@pytest.mark.parametrize("train", [True, False])
def test_reads_what_was_written(tmp_path, fmt, archive, protocol, train):
    batches = make_batches()
    write_copy(tmp_path, batches, fmt, archive=archive, protocol=protocol)
    ds = cifar10(tmp_path, train=train)
    x, y = expected(batches, train)
    assert ds.x.shape == (len(y), 3, 32, 32) and ds.x.dtype.is_floating_point
    np.testing.assert_allclose(ds.x.numpy(), x, atol=1e-6)
    np.testing.assert_array_equal(ds.labels.numpy(), y)
    assert ds.classes == NAMES
    assert len(ds.split.train) == len(y) and len(ds.split.val) == 0


def test_root_may_be_the_folder_or_the_archive_itself(tmp_path):
    batches = make_batches(1)
    folder = write_copy(tmp_path / "a", batches, "python")
    archive = write_copy(tmp_path, batches, "binary", archive=True)
    x, y = expected(batches, True)
    for root in (folder, archive):
        ds = cifar10(root)
        np.testing.assert_allclose(ds.x.numpy(), x, atol=1e-6)
        np.testing.assert_array_equal(ds.labels.numpy(), y)


def test_missing_meta_falls_back_to_the_standard_names(tmp_path):
    write_copy(tmp_path, make_batches(), "binary", names=None)
    assert cifar10(tmp_path).classes == CLASSES


def test_class_filter_and_subsets(tmp_path):
    batches = make_batches(2)
    write_copy(tmp_path, batches, "binary")
    x, y = expected(batches, True)
    ds = cifar10(tmp_path, classes="car")
    sel = np.flatnonzero(y == 1)
    np.testing.assert_allclose(ds.x.numpy(), x[sel], atol=1e-6)
    assert ds.classes == ["car"] and (ds.labels.numpy() == 0).all()
    # a list keeps the given order: labels index into it
    ds = cifar10(tmp_path, classes=[7, "bird"])
    sel = np.flatnonzero((y == 7) | (y == 2))
    np.testing.assert_allclose(ds.x.numpy(), x[sel], atol=1e-6)
    np.testing.assert_array_equal(ds.labels.numpy(), np.where(y[sel] == 7, 0, 1))
    assert ds.classes == ["horse", "bird"]
    # first n, then a seeded subset (same seed same subset, in file order, drawn from the filtered images)
    first = cifar10(tmp_path, classes=[7, "bird"], n=5)
    np.testing.assert_allclose(first.x.numpy(), x[sel[:5]], atol=1e-6)
    s1, s2, s3 = (cifar10(tmp_path, classes=[7, "bird"], n=5, subset_seed=s) for s in (3, 3, 4))
    assert np.array_equal(s1.x.numpy(), s2.x.numpy()) and not np.array_equal(s1.x.numpy(), s3.x.numpy())
    rows = [int(np.flatnonzero((np.abs(x[sel] - img).reshape(len(sel), -1).max(1) < 1e-6))[0])
            for img in s1.x.numpy()]
    assert rows == sorted(rows) and len(set(rows)) == 5
    # split and rebuild from the recorded parameters
    ds = cifar10(tmp_path, n=20, subset_seed=1, n_train=15, seed=9)
    assert len(ds.train) == 15 and len(ds.val) == 5
    assert not set(ds.split.train) & set(ds.split.val)
    again = load(ds.name, **ds.params)
    assert np.array_equal(again.x.numpy(), ds.x.numpy()) and np.array_equal(again.split.val, ds.split.val)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    batches = make_batches()
    folder = write_copy(tmp_path, batches, "python")
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": Evil(marker), b"labels": []}))
    with pytest.raises(ValueError, match=r"refused global (posix|os|nt)\.system"):
        cifar10(tmp_path)
    assert not marker.exists()
    # sanity: the same file would run the command through plain pickle (so the test can fail)
    pickle.loads((folder / "data_batch_3").read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("obj", [np.array([1, "a"], dtype=object), [eval], {b"x": Exception("boom")}])
def test_anything_but_plain_data_is_refused(obj):
    with pytest.raises(ValueError, match="refused"):
        safe_unpickle(pickle.dumps(obj), "test")


def test_missing_files_say_what_to_download_and_where(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"cifar-10-binary\.tar\.gz.*" + str(tmp_path)):
        cifar10(tmp_path)
    with pytest.raises(FileNotFoundError, match="www.cs.toronto.edu"):
        cifar10(tmp_path / "nowhere")
    write_copy(tmp_path, make_batches(), "binary", skip=("data_batch_3",))
    with pytest.raises(FileNotFoundError, match="data_batch_3.bin"):
        cifar10(tmp_path)
    assert len(cifar10(tmp_path, train=False).x) == PER_BATCH


def test_bad_input_raises_clear_errors(tmp_path):
    folder = write_copy(tmp_path, make_batches(), "binary")
    with pytest.raises(ValueError, match="classes"):
        cifar10(tmp_path, classes="unicorn")
    with pytest.raises(ValueError, match="classes"):
        cifar10(tmp_path, classes=[1, "car"])
    with pytest.raises(ValueError, match="n:"):
        cifar10(tmp_path, classes="car", n=10 ** 6)
    with pytest.raises(ValueError, match="n_train"):
        cifar10(tmp_path, n_train=0)
    (folder / "data_batch_2.bin").write_bytes(b"\x00" * 3000)
    with pytest.raises(ValueError, match="3073-byte"):
        cifar10(tmp_path)
    bad = tmp_path / "junk.tar.gz"
    bad.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="root"):
        cifar10(bad)


def test_shared_nested_labels_are_refused_at_once(tmp_path):
    """``l = [l, l]`` 40 deep pickles to a few hundred bytes but unfolds to 2^40 items; the check visits each
    distinct object once, so it answers at once (a check that unfolds it would not end)."""
    labels = []
    for _ in range(40):
        labels = [labels, labels]
    batch = pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": labels}, protocol=2)
    path = tar_gz(tmp_path / "cifar-10-python.tar.gz", "cifar-10-batches-py",
                  {f"data_batch_{i}": batch for i in range(1, 6)})
    assert path.stat().st_size < 2000
    with pytest.raises(ValueError, match=r"data_batch_1.*nested more than \d+ deep"):
        cifar10(path)


def test_shared_containers_are_counted_unfolded_and_cycles_refused():
    from memgen.data.cifar import MAX_DEPTH, MAX_ITEMS

    wide = list(range(100))                        # 100^4 = 10^8 unfolded items at depth 4 < MAX_DEPTH
    for _ in range(3):
        wide = [wide] * 100
    assert MAX_DEPTH > 5 and MAX_ITEMS < 100 ** 4
    with pytest.raises(ValueError, match="unfolds to more than"):
        safe_unpickle(pickle.dumps({b"labels": wide}), "test")
    cyclic = [1, 2]
    cyclic.append(cyclic)
    with pytest.raises(ValueError, match="holds itself"):
        safe_unpickle(pickle.dumps({b"labels": cyclic}), "test")
    shared = [7] * 10                              # shared but small: accepted and unfolded correctly
    out = safe_unpickle(pickle.dumps({b"labels": [shared, shared, (shared, shared)]}), "test")
    assert out[b"labels"][2][1] == [7] * 10


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty"])
def test_damaged_archives_name_the_file(tmp_path, damage):
    (tmp_path / "src").mkdir()
    good = write_copy(tmp_path / "src", make_batches(), "python", archive=True).read_bytes()
    data = {"garbage": bytes(range(256)) * 4, "truncated": good[: len(good) // 2], "empty": b""}[damage]
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=r"root: .*cifar-10-python\.tar\.gz"):
        cifar10(tmp_path)


def test_a_huge_member_declared_in_a_small_archive_is_refused_from_its_header(tmp_path, peak_bytes):
    """A tar header declaring a 2 GiB batch (the archive holds the header only: a few hundred bytes) is refused
    before anything is read or skipped; a standard copy over a lowered limit is refused the same way."""
    import gzip
    info = tarfile.TarInfo("cifar-10-batches-bin/data_batch_1.bin")
    info.size = 2 ** 31
    (tmp_path / "cifar-10-binary.tar.gz").write_bytes(gzip.compress(info.tobuf(tarfile.GNU_FORMAT)))
    for root in (tmp_path, tmp_path / "cifar-10-binary.tar.gz"):
        err, peak = peak_bytes(lambda: cifar10(root))
        assert isinstance(err, ValueError) and peak < 2 ** 20
        assert re.search(r"cifar-10-binary\.tar\.gz: cifar-10-batches-bin/data_batch_1\.bin holds 2147483648 bytes,"
                         r" over the limit of 67108864 bytes", str(err))
    batches = make_batches()
    for fmt, archive in (("binary", True), ("python", False)):
        root = tmp_path / f"{fmt}{archive}"
        root.mkdir()
        write_copy(root, batches, fmt, archive=archive)
        with pytest.raises(ValueError, match=r"data_batch_1(\.bin)? holds \d+ bytes, over the limit of 1000 bytes"):
            cifar10(root, max_bytes=1000)
        assert len(cifar10(root, max_bytes=10 ** 6).x) == 5 * PER_BATCH


@pytest.mark.parametrize("how", ["reconstruct", "ndarray"])
def test_a_tiny_pickle_cannot_make_numpy_allocate_gigabytes(tmp_path, how, peak_bytes):
    """numpy's allowed rebuilders take a shape from the pickle: ``_reconstruct(ndarray, (2**31,), 'b')`` or a
    direct ``ndarray((2**31,))`` in a ~150-byte batch once allocated 2 GiB. A declared shape is now checked
    against the bytes the pickle holds, and a call of ndarray itself is refused."""
    rebuild = np.zeros(0).__reduce__()[0]

    class Hostile:
        def __reduce__(self):
            if how == "reconstruct":
                return rebuild, (np.ndarray, (2 ** 31,), b"B")
            return np.ndarray, ((2 ** 31,), np.dtype("u1"))
    data = pickle.dumps({b"data": Hostile(), b"labels": []}, protocol=2)
    assert len(data) < 200
    batches = make_batches()
    folder = write_copy(tmp_path, batches, "python")
    (folder / "data_batch_1").write_bytes(data)
    err, peak = peak_bytes(lambda: cifar10(tmp_path))
    assert isinstance(err, ValueError) and peak < 2 ** 22
    expect = ("refused an array of shape (2147483648,) (2147483648 bytes): more than the" if how == "reconstruct"
              else "refused a call of numpy.ndarray")
    assert f"data_batch_1: refused to unpickle ({expect}" in str(err)


def test_a_non_default_max_bytes_is_recorded_so_params_rebuild_the_data(tmp_path):
    """A copy whose batches (36876 bytes each) exceed a small limit, read with a larger ``max_bytes``, rebuilds
    from its ``params`` under that same limit (a batch grown past it is refused by the rebuild); a default
    call's params hold no max_bytes, as before."""
    from memgen.data.cifar import MAX_BYTES
    folder = write_copy(tmp_path, make_batches(), "binary")
    batch = (folder / "data_batch_1.bin").read_bytes()
    assert len(batch) == PER_BATCH * 3073
    with pytest.raises(ValueError, match="over the limit of 1000 bytes"):
        cifar10(tmp_path, max_bytes=1000)
    ds = cifar10(tmp_path, max_bytes=40000, n_train=50)
    assert ds.params == {"root": str(tmp_path), "train": True, "classes": None, "n": None, "subset_seed": None,
                         "n_train": 50, "seed": 0, "max_bytes": 40000}
    again = load(ds.name, **ds.params)
    assert np.array_equal(again.x.numpy(), ds.x.numpy()) and np.array_equal(again.split.val, ds.split.val)
    for default in ({}, {"max_bytes": MAX_BYTES}):
        assert cifar10(tmp_path, **default).params == {"root": str(tmp_path), "train": True, "classes": None,
                                                       "n": None, "subset_seed": None, "n_train": None, "seed": 0}
    (folder / "data_batch_1.bin").write_bytes(batch + batch)
    with pytest.raises(ValueError, match=r"data_batch_1\.bin holds 73752 bytes, over the limit of 40000 bytes"):
        load(ds.name, **ds.params)
