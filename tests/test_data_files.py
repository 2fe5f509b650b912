"""Data from .npy/.npz arrays and from folders of images."""
import io
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from memgen.data import from_array, image_folder, load


def test_npy_npz_and_in_memory_arrays(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20, 3, 4, 4))
    np.save(tmp_path / "a.npy", a)
    ds = from_array(tmp_path / "a.npy", n_train=15, seed=2)
    np.testing.assert_allclose(ds.x.numpy(), a, rtol=1e-6)            # float data kept as it is
    assert ds.labels is None and len(ds.train) == 15 and len(ds.val) == 5
    again = load(ds.name, **ds.params)
    assert torch.equal(again.x, ds.x) and np.array_equal(again.split.val, ds.split.val)
    # uint8 images map to [-1, 1] by v / 127.5 - 1; labels are read from the .npz
    img = rng.integers(0, 256, (12, 3, 5, 5), dtype=np.uint8)
    lab = rng.integers(0, 3, 12)
    np.savez(tmp_path / "b.npz", x=img, labels=lab, other=np.zeros(2))
    ds = from_array(str(tmp_path / "b.npz"))
    np.testing.assert_allclose(ds.x.numpy(), img / 127.5 - 1, atol=1e-6)
    assert ds.x.min() >= -1 and ds.x.max() <= 1
    np.testing.assert_array_equal(ds.labels.numpy(), lab)
    np.savez(tmp_path / "c.npz", images=img, cls=lab)
    np.testing.assert_array_equal(from_array(tmp_path / "c.npz", labels="cls").labels.numpy(), lab)
    # in memory: numpy or torch, labels as an array; params record a checksum
    ds1, ds2 = from_array(img, labels=lab), from_array(torch.as_tensor(img), labels=lab)
    assert torch.equal(ds1.x, ds2.x) and ds1.params["sha256"] == ds2.params["sha256"]
    assert ds1.params["sha256"] != from_array(img[::-1].copy()).params["sha256"]


def test_arrays_bad_input(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="object arrays are refused"):
        from_array(tmp_path / "obj.npy")
    with pytest.raises(FileNotFoundError, match="path_or_array"):
        from_array(tmp_path / "missing.npy")
    np.savez(tmp_path / "two.npz", a=np.zeros((3, 2)), b=np.ones((3, 2)))
    with pytest.raises(ValueError, match="name the data 'x'"):
        from_array(tmp_path / "two.npz")
    with pytest.raises(ValueError, match="labels"):
        from_array(np.zeros((4, 2)), labels=[0, 1])
    np.savez(tmp_path / "xs.npz", x=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="labels"):
        from_array(tmp_path / "xs.npz", labels="nope")
    with pytest.raises(ValueError, match="path_or_array"):
        from_array(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        from_array(np.array([[0.0, np.nan]]))
    with pytest.raises(TypeError, match="path_or_array"):
        from_array([[1.0, 2.0]])


def write_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_image_folder_flat_and_class_folders(tmp_path):
    rng = np.random.default_rng(1)
    imgs = rng.integers(0, 256, (5, 6, 7, 3), dtype=np.uint8)          # H=6, W=7, RGB
    for i, im in enumerate(imgs):
        write_png(tmp_path / "flat" / f"{i:02d}.png", im)
    (tmp_path / "flat" / "notes.txt").write_text("not an image")
    ds = image_folder(tmp_path / "flat", n_train=3, seed=0)
    np.testing.assert_allclose(ds.x.numpy(), imgs.transpose(0, 3, 1, 2) / 127.5 - 1, atol=1e-6)
    assert ds.labels is None and len(ds.train) == 3
    for cls, idx in (("dog", [0, 1]), ("cat", [2, 3, 4])):
        for i in idx:
            write_png(tmp_path / "cls" / cls / f"{i}.png", imgs[i])
    ds = image_folder(tmp_path / "cls")
    assert ds.classes == ["cat", "dog"]
    np.testing.assert_array_equal(ds.labels.numpy(), [0, 0, 0, 1, 1])
    np.testing.assert_allclose(ds.x.numpy(), imgs[[2, 3, 4, 0, 1]].transpose(0, 3, 1, 2) / 127.5 - 1, atol=1e-6)
    # resizing: a constant image stays constant at any size
    write_png(tmp_path / "big" / "a.png", np.full((40, 30, 3), 200, dtype=np.uint8))
    write_png(tmp_path / "big" / "b.png", np.full((9, 9, 3), 10, dtype=np.uint8))
    ds = image_folder(tmp_path / "big", size=16)
    assert ds.x.shape == (2, 3, 16, 16)
    np.testing.assert_allclose(ds.x[0].numpy(), 200 / 127.5 - 1, atol=1e-6)
    np.testing.assert_allclose(ds.x[1].numpy(), 10 / 127.5 - 1, atol=1e-6)


def test_image_folder_bad_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        image_folder(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        image_folder(tmp_path / "empty")
    write_png(tmp_path / "sizes" / "a.png", np.zeros((4, 4, 3), dtype=np.uint8))
    write_png(tmp_path / "sizes" / "b.png", np.zeros((5, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="size="):
        image_folder(tmp_path / "sizes")
    write_png(tmp_path / "mixed" / "a.png", np.zeros((4, 4, 3), dtype=np.uint8))
    write_png(tmp_path / "mixed" / "c" / "b.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="mixes"):
        image_folder(tmp_path / "mixed")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read image"):
        image_folder(tmp_path / "broken")
    with pytest.raises(ValueError, match="size"):
        image_folder(tmp_path / "sizes", size=0)


def _npy_bytes(a, *, shape=None):
    """``a`` in the .npy format (``np.save``), its header optionally claiming another ``shape``."""
    buf = io.BytesIO()
    if shape is None:
        np.save(buf, a, allow_pickle=True)
    else:
        np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(a.dtype),
                                                   "fortran_order": False, "shape": shape})
        buf.write(a.tobytes())
    return buf.getvalue()


def test_hostile_array_files_are_refused_naming_the_file(tmp_path):
    big = _npy_bytes(np.zeros((4, 3), np.float32), shape=(10 ** 9, 10 ** 6))    # claims 10^15 elements
    (tmp_path / "big.npy").write_bytes(big)
    with pytest.raises(ValueError, match=r"big\.npy declares shape \(1000000000, 1000000\)"):
        from_array(tmp_path / "big.npy")
    with zipfile.ZipFile(tmp_path / "big.npz", "w") as zf:
        zf.writestr("x.npy", big)
    with pytest.raises(ValueError, match=r"big\.npz\['x'\] declares shape"):
        from_array(tmp_path / "big.npz")
    with zipfile.ZipFile(tmp_path / "obj.npz", "w") as zf:                      # object labels next to good data
        zf.writestr("x.npy", _npy_bytes(np.zeros((2, 3))))
        zf.writestr("labels.npy", _npy_bytes(np.array([{"a": 1}, None], dtype=object)))
    with pytest.raises(ValueError, match=r"labels: .*obj\.npz\['labels'\].*object arrays are refused"):
        from_array(tmp_path / "obj.npz")
    good = _npy_bytes(np.arange(12.0).reshape(4, 3))
    for name, data in (("garbage.npz", bytes(range(256))), ("cut.npy", good[:-8]), ("cut.npz", b"PK\x03\x04junk"),
                       ("pickle.npy", pickle.dumps(np.zeros((2, 2)))), ("empty.npy", b"")):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ValueError, match=re.escape(str(tmp_path / name))):
            from_array(tmp_path / name)
    (tmp_path / "good.npy").write_bytes(good)                               # the reader itself is exact
    np.testing.assert_array_equal(from_array(tmp_path / "good.npy").x.numpy(), np.arange(12.0).reshape(4, 3))
