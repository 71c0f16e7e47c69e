"""Data sets: digits split, toy 2-D data, the CIFAR-10 loader on a tiny fixture.

The CIFAR-10 tests write their fixture with ``write_cifar10_fixture`` into
``tmp_path``; no binary fixture is committed.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits as sk_load_digits

from trainlab.data import (
    CIFAR10_URL,
    Split,
    load_cifar10,
    load_digit_images,
    load_digits,
    make_gaussian_2d,
    make_spiral,
    write_cifar10_fixture,
)

pytestmark = pytest.mark.data


# ---------------------------------------------------------------- digits


def test_digits_shapes_dtypes_ranges():
    s = load_digits()
    assert isinstance(s, Split)
    n = len(s.X_train) + len(s.X_val) + len(s.X_test)
    assert n == 1797
    for X, y in ((s.X_train, s.y_train), (s.X_val, s.y_val), (s.X_test, s.y_test)):
        assert X.dtype == torch.float32 and y.dtype == torch.int64
        assert X.shape == (len(y), 64)
        assert X.min() >= 0 and X.max() <= 1
    assert s.X_train.max() == 1.0  # 16 / 16: scaled, not clipped
    assert set(s.y_train.tolist()) == set(range(10))
    assert s.num_classes == 10
    assert abs(len(s.X_test) / 1797 - 0.2) < 0.01
    assert abs(len(s.X_val) / 1797 - 0.2) < 0.01


def test_digits_split_is_disjoint_stratified_and_covers_the_data():
    s = load_digits(val_fraction=0.1, test_fraction=0.3)
    ref = sk_load_digits()
    X_all = torch.from_numpy(ref.data / 16.0).float()
    # every (row, label) pair of the original data lands in exactly one set
    rows = {}
    for i, (x, t) in enumerate(zip(X_all, ref.target, strict=True)):
        rows.setdefault((tuple(x.tolist()), int(t)), []).append(i)
    seen = []
    for X, y in ((s.X_train, s.y_train), (s.X_val, s.y_val), (s.X_test, s.y_test)):
        for x, t in zip(X, y, strict=True):
            seen.append((tuple(x.tolist()), int(t)))
    assert sorted(seen) == sorted(k for k, v in rows.items() for _ in v)
    # stratified: every class near 30 % in the test set
    for c in range(10):
        share = (s.y_test == c).sum() / (ref.target == c).sum()
        assert abs(float(share) - 0.3) < 0.01


def test_digits_reproducible_and_seed_dependent():
    a, b, c = load_digits(seed=3), load_digits(seed=3), load_digits(seed=4)
    assert torch.equal(a.X_train, b.X_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.y_train, c.y_train)


def test_digits_dtype_device_and_images(device):
    s = load_digits(dtype=torch.float64, device=device)
    assert s.X_train.dtype == torch.float64 and s.X_train.device.type == device.type
    assert s.y_train.device.type == device.type
    im = load_digit_images(seed=1)
    flat = load_digits(seed=1)
    assert im.X_train.shape[1:] == (1, 8, 8)
    assert torch.equal(im.X_train.reshape(-1, 64), flat.X_train)
    assert torch.equal(im.y_val, flat.y_val)


def test_digits_bad_fractions():
    with pytest.raises(ValueError, match="sum below 1"):
        load_digits(val_fraction=0.5, test_fraction=0.5)


# ---------------------------------------------------------------- toy data


def test_spiral_shapes_and_geometry():
    X, y = make_spiral(50, 4, generator=torch.Generator().manual_seed(0))
    assert X.shape == (200, 2) and y.shape == (200,) and y.dtype == torch.int64
    assert torch.equal(torch.bincount(y), torch.full((4,), 50))
    radius = X.double().norm(dim=1)
    assert radius.max() <= 1 + 1e-6
    # radius grows linearly along each arm, whatever the angle noise
    expected = torch.linspace(0, 1, 50, dtype=torch.float64).repeat(4)
    assert (radius - expected).abs().max() < 1e-6
    X2, _ = make_spiral(50, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(X, X2)


def test_gaussian_2d_mean_and_covariance():
    mean, cov = (3.0, -1.0), ((2.0, 1.2), (1.2, 1.0))
    X = make_gaussian_2d(
        20000, mean=mean, cov=cov, generator=torch.Generator().manual_seed(0)
    ).double()
    assert X.shape == (20000, 2)
    assert (X.mean(0) - torch.tensor(mean)).abs().max() < 0.05
    emp = torch.cov(X.T)
    assert (emp - torch.tensor(cov, dtype=torch.float64)).abs().max() < 0.08
    with pytest.raises(ValueError, match="positive definite"):
        make_gaussian_2d(10, cov=((1.0, 2.0), (2.0, 1.0)))


# ---------------------------------------------------------------- CIFAR-10


def read_raw(path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def test_cifar_fixture_round_trip(tmp_path):
    root = write_cifar10_fixture(tmp_path / "cifar", n_per_batch=4, seed=1)
    s = load_cifar10(root)
    assert s.X_train.shape == (20, 3, 32, 32) and s.X_test.shape == (4, 3, 32, 32)
    assert s.X_val.shape == (0, 3, 32, 32)
    assert s.X_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    raw = [read_raw(root / f"data_batch_{i}") for i in range(1, 6)]
    data = np.concatenate([r[b"data"] for r in raw]).astype(np.float32)
    assert np.array_equal(s.X_train.reshape(20, 3072).numpy(), data)
    labels = sum((r[b"labels"] for r in raw), [])
    assert s.y_train.tolist() == labels
    test = read_raw(root / "test_batch")
    assert np.array_equal(s.X_test.reshape(4, -1).numpy(), test[b"data"])
    assert s.y_test.tolist() == test[b"labels"]
    # num_val takes the last training images
    v = load_cifar10(root, num_val=3, dtype=torch.float64)
    assert v.X_train.shape[0] == 17 and v.X_val.shape[0] == 3
    assert torch.equal(v.X_val, s.X_train[17:].double())
    assert v.y_val.tolist() == labels[17:]


def test_cifar_fixture_is_the_exact_format(tmp_path):
    root = write_cifar10_fixture(tmp_path, n_per_batch=3)
    names = {*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"}
    assert set(os.listdir(root)) == names
    b = read_raw(root / "data_batch_2")
    assert set(b) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert b[b"data"].dtype == np.uint8 and b[b"data"].shape == (3, 3072)
    assert isinstance(b[b"labels"], list) and all(0 <= t < 10 for t in b[b"labels"])
    assert read_raw(root / "batches.meta")[b"label_names"][0] == b"airplane"


def test_cifar_channel_order_is_rgb_planes(tmp_path):
    root = write_cifar10_fixture(tmp_path, n_per_batch=2)
    # one hand-made image: R = 10, G = 20, B = 30 everywhere, except the pixel at
    # row 1, column 2 which is (200, 150, 100); row-major planes of 32 x 32
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)])
    for c, v in enumerate((200, 150, 100)):
        row[c * 1024 + 1 * 32 + 2] = v
    data = np.stack([row, np.zeros(3072)]).astype(np.uint8)
    batch = {b"batch_label": b"hand", b"labels": [7, 3], b"data": data,
             b"filenames": [b"a.png", b"b.png"]}  # fmt: skip
    with open(root / "data_batch_1", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    s = load_cifar10(root)
    img = s.X_train[0]
    assert s.y_train[:2].tolist() == [7, 3]
    assert img[:, 0, 0].tolist() == [10, 20, 30]
    assert img[:, 1, 2].tolist() == [200, 150, 100]
    assert img[:, 2, 1].tolist() == [10, 20, 30]  # not transposed
    assert (s.X_train[1] == 0).all()


def test_cifar_accepts_parent_folder_and_old_numpy_pickles(tmp_path):
    root = write_cifar10_fixture(tmp_path / "cifar-10-batches-py", n_per_batch=2)
    # the original archive was pickled with numpy < 2: numpy.core.multiarray
    path = root / "test_batch"
    blob = path.read_bytes()
    assert b"numpy._core.multiarray" in blob
    path.write_bytes(blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    s = load_cifar10(tmp_path)
    assert s.X_test.shape == (2, 3, 32, 32)


def test_cifar_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_cifar10(tmp_path / "nowhere")
    msg = str(err.value)
    assert "data_batch_1" in msg and CIFAR10_URL in msg and "nowhere" in msg


def test_cifar_missing_one_file_names_it(tmp_path):
    root = write_cifar10_fixture(tmp_path, n_per_batch=2)
    (root / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match=r"data_batch_4 not found"):
        load_cifar10(root)


def test_cifar_refuses_pickles_that_run_code(tmp_path):
    root = write_cifar10_fixture(tmp_path, n_per_batch=2)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    with open(root / "data_batch_3", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load_cifar10(root)


def test_cifar_wrong_content_is_a_clear_error(tmp_path):
    root = write_cifar10_fixture(tmp_path, n_per_batch=2)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(ValueError, match=r"uint8 of shape \(n, 3072\)"):
        load_cifar10(root)
