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


def _png16(path, a):
    """A 16-bit PNG of ``a`` (uint16 [H, W] grayscale or [H, W, 3] RGB), written by hand (Pillow writes
    16-bit grayscale only)."""
    import struct
    import zlib
    h, w = a.shape[:2]
    raw = b"".join(b"\x00" + a[r].astype(">u2").tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", w, h, 16, 2 if a.ndim == 3 else 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
                     + chunk(b"IEND", b""))


def test_sixteen_bit_images_are_scaled_by_their_bit_depth(tmp_path):
    """A 16-bit grayscale PNG spans [-1, 1] by v / 32767.5 - 1 (once clipped: everything above 255 was 1.0)."""
    gray = np.array([[0, 255, 256, 1000], [32768, 40000, 65000, 65535]], np.uint16)
    _png16(tmp_path / "g.png", gray)
    x = image_folder(tmp_path).x
    assert x.shape == (1, 3, 2, 4)
    np.testing.assert_allclose(x[0].numpy(), np.broadcast_to(gray / 32767.5 - 1, (3, 2, 4)), rtol=0, atol=1e-6)
    x = image_folder(tmp_path, size=2).x                         # resizing keeps the 16-bit range
    assert x.shape == (1, 3, 2, 2) and float(x.min()) < 0 and float(x.max()) < 1
    rgb = np.zeros((2, 2, 3), np.uint16)
    rgb[0, 0] = (65535, 32896, 0)                                 # 16-bit RGB: Pillow keeps the high bytes
    _png16(tmp_path / "g.png", rgb)
    np.testing.assert_allclose(image_folder(tmp_path).x[0, :, 0, 0].numpy(), [1, 128 / 127.5 - 1, -1], atol=1e-6)
    Image.fromarray(np.full((2, 2), 7, np.int32), mode="I").save(tmp_path / "g.tif")
    with pytest.raises(ValueError, match=r"g\.tif holds 32-bit integer pixels \(mode I\)"):
        image_folder(tmp_path)


def test_negative_dimension_in_an_npy_header_is_refused(tmp_path):
    """Once loaded as shape (2, 0): the header's shape (2, -1) declares -16 bytes."""
    (tmp_path / "neg.npy").write_bytes(_npy_bytes(np.zeros((2, 2)), shape=(2, -1)))
    with pytest.raises(ValueError, match=r"neg\.npy declares shape \(2, -1\), with a negative dimension"):
        from_array(tmp_path / "neg.npy")


def test_array_files_over_the_limit_are_refused_before_reading(tmp_path, peak_bytes):
    """A .npz member that inflates far beyond its compressed size (here 16 MiB of zeros in 16 kB) is refused
    from its declared shape, over the stated limit, before its data is read; the default limit is MAX_BYTES."""
    import inspect

    from memgen.data.files import MAX_BYTES
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w") as m:
            np.lib.format.write_array_header_1_0(m, {"descr": "|u1", "fortran_order": False, "shape": (2 ** 18, 64)})
            zeros = bytes(2 ** 20)
            for _ in range(16):
                m.write(zeros)
    assert (tmp_path / "bomb.npz").stat().st_size < 2 ** 20
    err, peak = peak_bytes(lambda: from_array(tmp_path / "bomb.npz", max_bytes=2 ** 20))
    assert isinstance(err, ValueError) and peak < 2 ** 20
    assert re.search(r"bomb\.npz\['x'\] declares shape \(262144, 64\) \(16777216 bytes\), over the limit of "
                     r"1048576 bytes; pass a larger max_bytes", str(err))
    assert from_array(tmp_path / "bomb.npz", max_bytes=2 ** 24).x.shape == (2 ** 18, 64)
    assert inspect.signature(from_array).parameters["max_bytes"].default == MAX_BYTES == 4 * 2 ** 30
    (tmp_path / "short.npy").write_bytes(_npy_bytes(np.zeros(4, np.uint8), shape=(2 ** 33,)))   # header: 8 GiB
    err, peak = peak_bytes(lambda: from_array(tmp_path / "short.npy"))
    assert "short.npy declares shape (8589934592,) (8589934592 bytes) but holds only 4 bytes" in str(err)
    assert peak < 2 ** 20


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_sixteen_bit_float_tensors_are_read_as_their_float32_values(dtype):
    x = torch.randn(12, 3, generator=torch.Generator().manual_seed(0)).to(dtype)
    ds = from_array(x)
    assert ds.train.dtype == torch.float32
    assert torch.equal(ds.train, x.float())                   # every 16-bit value is exact in float32


def test_a_non_default_max_bytes_is_recorded_so_params_rebuild_the_data(tmp_path):
    """A file over a small limit, read with a larger ``max_bytes``, rebuilds from its ``params`` under that same
    limit (a grown file is then refused by the rebuild as by the original call); a default call's params are
    the path, labels, split and seed only, as before."""
    from memgen.data.files import MAX_BYTES
    a = np.random.default_rng(3).integers(0, 256, (64, 64), dtype=np.uint8)          # 4096 bytes of data
    np.save(tmp_path / "a.npy", a)
    with pytest.raises(ValueError, match="over the limit of 1000 bytes"):
        from_array(tmp_path / "a.npy", max_bytes=1000)
    ds = from_array(tmp_path / "a.npy", max_bytes=8192, n_train=50, seed=1)
    assert ds.params == {"path_or_array": str(tmp_path / "a.npy"), "labels": None, "max_bytes": 8192,
                         "n_train": 50, "seed": 1}
    again = load(ds.name, **ds.params)
    assert torch.equal(again.x, ds.x) and np.array_equal(again.split.val, ds.split.val)
    for default in ({}, {"max_bytes": MAX_BYTES}):
        assert from_array(tmp_path / "a.npy", **default).params == {
            "path_or_array": str(tmp_path / "a.npy"), "labels": None, "n_train": None, "seed": 0}
    np.save(tmp_path / "a.npy", np.concatenate([a, a, a]))                              # 12288 bytes
    with pytest.raises(ValueError, match=r"a\.npy declares shape \(192, 64\) \(12288 bytes\), over the limit of 8192"):
        load(ds.name, **ds.params)
