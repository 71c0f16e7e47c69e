r"""Data sets for the course: small ones that train in seconds on a CPU.

- ``load_digits``: scikit-learn's bundled 8x8 handwritten digits (1797 images,
  10 classes), no download; split into train / validation / test.
- ``load_digit_images``: the same, kept as images ``(N, 1, 8, 8)``.
- ``make_spiral``: the classic 2-D spiral, not linearly separable.
- ``make_gaussian_2d``: a correlated, offset 2-D cloud, to draw what zero-centering,
  normalization, PCA and whitening do.
- ``load_cifar10``: CIFAR-10 from a local copy of the python version; never
  downloads. ``write_cifar10_fixture`` writes a tiny folder in the same format,
  for tests and demos.

Convention: features are floating point (``float32`` unless asked), labels are
``int64`` class indices, and every random choice takes a seed or a
``torch.Generator`` so that runs repeat.
"""

from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_CLASSES = (
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
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"


@dataclass(repr=False)
class Split:
    """A data set split into training, validation and test sets.

    Attributes:
        X_train, y_train: training inputs and labels.
        X_val, y_val: validation inputs and labels (may hold 0 samples).
        X_test, y_test: test inputs and labels.

    Shape:
        X_*: ``(N, ...)`` floating point; y_*: ``(N,)`` int64.
    """

    X_train: torch.Tensor
    y_train: torch.Tensor
    X_val: torch.Tensor
    y_val: torch.Tensor
    X_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def num_classes(self) -> int:
        """One more than the largest label in any of the three sets."""
        ys = [y for y in (self.y_train, self.y_val, self.y_test) if y.numel()]
        return int(max(int(y.max()) for y in ys)) + 1

    def to(self, *args, **kwargs) -> Split:
        """A copy with every ``X_*`` moved/cast by ``X.to(*args, **kwargs)``.

        Labels keep their dtype and follow the inputs' device.
        """
        out = {}
        for part in ("train", "val", "test"):
            X = getattr(self, f"X_{part}").to(*args, **kwargs)
            out[f"X_{part}"] = X
            out[f"y_{part}"] = getattr(self, f"y_{part}").to(X.device)
        return Split(**out)

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{p}={tuple(getattr(self, f'X_{p}').shape)}"
            for p in ("train", "val", "test")
        )
        return f"Split({parts}, dtype={self.X_train.dtype})"


# ---------------------------------------------------------------- digits


def _stratified_indices(
    y: torch.Tensor, val_fraction: float, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class random split, so every set keeps the class proportions."""
    gen = torch.Generator().manual_seed(seed)
    parts: tuple[list, list, list] = ([], [], [])
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = round(test_fraction * len(idx))
        n_val = round(val_fraction * len(idx))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    out = []
    for chunks in parts:
        idx = torch.cat(chunks)
        out.append(idx[torch.randperm(len(idx), generator=gen)])  # mix the classes
    return out[0], out[1], out[2]


def load_digits(
    *,
    val_fraction: float = 0.2,
    test_fraction: float = 0.2,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Split:
    r"""The 8x8 handwritten digits bundled with scikit-learn, split three ways.

    1797 grayscale images of the digits 0-9; the pixel values 0..16 are scaled
    to $[0, 1]$ by dividing by 16. No download: the data ships with
    scikit-learn.

    Args:
        val_fraction: share of each class put in the validation set (default 0.2).
        test_fraction: share of each class put in the test set (default 0.2).
        seed: seed of the split (default 0); the same seed gives the same split.
        dtype: floating dtype of ``X`` (default ``torch.float32``).
        device: where the tensors live (default: CPU).

    Returns:
        A ``Split``; the split is stratified (each set has the class proportions
        of the whole) and the three sets are disjoint.

    Shape:
        X_*: ``(N, 64)``, values in ``[0, 1]``; y_*: ``(N,)`` int64 in ``0..9``.
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    if not (
        0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1
    ):
        raise ValueError(
            "val_fraction and test_fraction must be >= 0 with a sum below 1; got "
            f"val_fraction={val_fraction}, test_fraction={test_fraction}"
        )
    digits = _sk_load_digits()
    X = torch.from_numpy(digits.data / 16.0).to(dtype)  # (1797, 64)
    y = torch.from_numpy(digits.target).long()  # (1797,)
    tr, va, te = _stratified_indices(y, val_fraction, test_fraction, seed)
    return Split(X[tr], y[tr], X[va], y[va], X[te], y[te]).to(device)


def load_digit_images(**kwargs) -> Split:
    """Like ``load_digits`` (same arguments), with ``X`` as images ``(N, 1, 8, 8)``."""
    s = load_digits(**kwargs)
    return Split(
        s.X_train.reshape(-1, 1, 8, 8),  # (N, 1, 8, 8)
        s.y_train,
        s.X_val.reshape(-1, 1, 8, 8),
        s.y_val,
        s.X_test.reshape(-1, 1, 8, 8),
        s.y_test,
    )


# ---------------------------------------------------------------- toy 2-D data


def make_spiral(
    n_per_class: int = 100,
    num_classes: int = 3,
    *,
    noise: float = 0.2,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Interleaved spiral arms, one per class: not linearly separable.

    Arm $j$ has points at radius $r \in [0, 1]$ (evenly spaced) and angle
    $\theta = 4j + 4r + \text{noise} \cdot z$, $z \sim N(0, 1)$, placed at
    $(r \sin\theta, r \cos\theta)$.

    Args:
        n_per_class: points per arm (default 100).
        num_classes: number of arms (default 3).
        noise: standard deviation of the angle noise (default 0.2).
        generator: random generator (default: torch's global one).
        dtype, device: of ``X`` (default ``float32``, CPU).

    Returns:
        ``(X, y)``: ``X`` ``(N, 2)`` with ``N = n_per_class * num_classes``,
        ``y`` ``(N,)`` int64; points grouped by class.
    """
    r = torch.linspace(0.0, 1.0, n_per_class, dtype=torch.float64)
    Xs, ys = [], []
    for j in range(num_classes):
        z = torch.randn(n_per_class, generator=generator, dtype=torch.float64)
        theta = torch.linspace(4.0 * j, 4.0 * (j + 1), n_per_class) + noise * z
        Xs.append(torch.stack([r * torch.sin(theta), r * torch.cos(theta)], dim=1))
        ys.append(torch.full((n_per_class,), j, dtype=torch.int64))
    X = torch.cat(Xs).to(dtype=dtype, device=device)  # (N, 2)
    return X, torch.cat(ys).to(device)


def make_gaussian_2d(
    n: int = 500,
    *,
    mean: tuple[float, float] = (3.0, 2.0),
    cov: tuple[tuple[float, float], tuple[float, float]] = ((2.0, 1.2), (1.2, 1.0)),
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""Samples of a correlated 2-D Gaussian away from the origin.

    $x = \mu + L z$ with $z \sim N(0, I)$ and $L L^\top = \Sigma$ (Cholesky), so
    $x \sim N(\mu, \Sigma)$. The defaults give a tilted, elongated cloud offset
    from the origin: the "original data" panel of the preprocessing figures.

    Args:
        n: number of points (default 500).
        mean: $\mu$ (default ``(3.0, 2.0)``).
        cov: $\Sigma$, symmetric positive definite (default
            ``((2.0, 1.2), (1.2, 1.0))``).
        generator: random generator (default: torch's global one).
        dtype, device: of the result (default ``float32``, CPU).

    Returns:
        ``X`` of shape ``(n, 2)``.
    """
    mu = torch.tensor(mean, dtype=torch.float64)
    sigma = torch.tensor(cov, dtype=torch.float64)
    if mu.shape != (2,) or sigma.shape != (2, 2):
        raise ValueError(
            f"mean must have 2 entries and cov shape (2, 2); got {tuple(mu.shape)} "
            f"and {tuple(sigma.shape)}"
        )
    L, info = torch.linalg.cholesky_ex(sigma)
    if info != 0 or not torch.equal(sigma, sigma.T):
        raise ValueError(f"cov must be symmetric positive definite; got {cov}")
    z = torch.randn(n, 2, generator=generator, dtype=torch.float64)
    return (mu + z @ L.T).to(dtype=dtype, device=device)  # (n, 2)


# ---------------------------------------------------------------- CIFAR-10


# what a CIFAR-10 batch pickle may reference, resolved without importing by name
_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy's array reconstructor
_SCALAR = np.float64(0).__reduce__()[0]  # numpy's scalar reconstructor
_PICKLE_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy < 2
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _SCALAR,
    ("numpy._core.multiarray", "scalar"): _SCALAR,
    ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, and refuses anything else.

    This narrows what a pickle may run; it does not make an untrusted file safe.
    """

    def find_class(self, module: str, name: str):
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load {module}.{name} from a CIFAR-10 batch file: only "
                "numpy arrays, lists and dicts are expected there"
            ) from None


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = _ArrayUnpickler(f, encoding="bytes").load()
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        found = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(
            f"{path} is not a CIFAR-10 python batch: expected a dict with keys "
            f"b'data' and b'labels'; found {found}"
        )
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{path}: b'data' must be uint8 of shape (n, 3072); got {data.dtype} "
            f"of shape {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"{path}: {data.shape[0]} images but {labels.size} labels in b'labels'"
        )
    return data, labels


def _find_cifar_folder(root: str | Path) -> Path:
    root = Path(root)
    for folder in (root, root / "cifar-10-batches-py"):
        if (folder / CIFAR10_TEST_FILE).is_file():
            return folder
    return root


def load_cifar10(
    root: str | Path,
    *,
    num_val: int = 0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Split:
    r"""CIFAR-10 from a local copy of its python version. Never downloads.

    Reads ``data_batch_1`` .. ``data_batch_5`` (training) and ``test_batch``
    from ``root`` or from ``root/cifar-10-batches-py``. Each file is a pickled
    dict whose ``b"data"`` is a uint8 array ``(n, 3072)``: one image per row,
    the 1024 red values first, then green, then blue, each plane row-major
    32x32; ``b"labels"`` holds the ``n`` class indices (see ``CIFAR10_CLASSES``).
    To get the data, download ``CIFAR10_URL`` and extract it.

    Pixel values are kept as they are, $0..255$, only cast to ``dtype``:
    preprocessing (mean image, per-channel mean) is the course's next step.

    Args:
        root: the folder holding the batch files, or its parent.
        num_val: move the last ``num_val`` training images to the validation set
            (default 0: an empty validation set).
        dtype: floating dtype of ``X`` (default ``torch.float32``).
        device: where the tensors live (default: CPU).

    Returns:
        A ``Split``; with the full data set ``X_train`` is ``(50000 - num_val, 3,
        32, 32)`` and ``X_test`` ``(10000, 3, 32, 32)``.

    Raises:
        FileNotFoundError: a batch file is missing (the message names it and
            says where to get the data).

    Security: the batch files are Python pickles; load only files you trust
    (such as the archive from ``CIFAR10_URL``). Loading refuses everything
    but numpy arrays and plain containers, which narrows but does not remove
    the risk.
    """
    folder = _find_cifar_folder(root)
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 batch file {folder / missing[0]} not found "
            f"(missing: {', '.join(missing)}). Expected the python version of "
            f"CIFAR-10 in {Path(root)} or {Path(root) / 'cifar-10-batches-py'}: "
            f"download {CIFAR10_URL} and extract it there, e.g. "
            f"`tar -xzf cifar-10-python.tar.gz -C {Path(root)}`."
        )
    batches = [_read_batch(folder / n) for n in CIFAR10_TRAIN_FILES]
    data = np.concatenate([d for d, _ in batches])  # (50000, 3072)
    labels = np.concatenate([y for _, y in batches])
    test_data, test_labels = _read_batch(folder / CIFAR10_TEST_FILE)
    if not 0 <= num_val < len(data):
        raise ValueError(
            f"num_val must be between 0 and {len(data) - 1} (the training set "
            f"size minus one); got {num_val}"
        )

    def images(d: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(d).reshape(-1, 3, 32, 32).to(dtype)  # (n, C, H, W)

    X, y = images(data), torch.from_numpy(labels)
    n_train = len(data) - num_val
    return Split(
        X[:n_train],
        y[:n_train],
        X[n_train:],
        y[n_train:],
        images(test_data),
        torch.from_numpy(test_labels),
    ).to(device)


def write_cifar10_fixture(
    root: str | Path, n_per_batch: int = 10, seed: int = 0
) -> Path:
    """Write a tiny CIFAR-10 look-alike in the exact python-version format.

    Creates ``data_batch_1`` .. ``data_batch_5``, ``test_batch`` and
    ``batches.meta`` in ``root`` (created if needed), each batch a pickled dict
    (protocol 2, like the original files) with ``b"batch_label"``,
    ``b"labels"`` (a list of ints), ``b"data"`` (uint8 ``(n_per_batch, 3072)``,
    random pixels) and ``b"filenames"``. ``load_cifar10(root)`` then reads it,
    so tests and demos run without the real 170 MB archive.

    Args:
        root: the folder to write into.
        n_per_batch: images per batch file (default 10).
        seed: seed of the random pixels and labels (default 0).

    Returns:
        ``root`` as a ``Path``.

    Security: the files are pickles; like the real ones, load them only when
    you trust where they came from.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE):
        batch = {
            b"batch_label": f"fixture {name}".encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n_per_batch)],
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n_per_batch)],
        }
        with open(root / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_cases_per_batch": n_per_batch,
        b"num_vis": 3072,
    }
    with open(root / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return root


__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_URL",
    "Split",
    "load_cifar10",
    "load_digit_images",
    "load_digits",
    "make_gaussian_2d",
    "make_spiral",
    "write_cifar10_fixture",
]
