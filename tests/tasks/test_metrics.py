from attncoach.tasks.metrics import classification_metrics
from attncoach.train.schedule import lr_factor


def test_classification_metrics_values():
    m = classification_metrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], ["a", "b", "c"], loss=0.5)
    assert m["accuracy"] == 4 / 6
    assert m["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert m["per_class"]["b"]["precision"] == 0.5 and m["per_class"]["c"]["support"] == 3
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 * 0.5 * 1 / 1.5, 2 * 1 * (2 / 3) / (1 + 2 / 3)]
    assert abs(m["macro_f1"] - sum(f1) / 3) < 1e-9
    assert m["loss"] == 0.5 and m["n"] == 6


def test_lr_schedules():
    assert lr_factor(0, 100, 10, "linear") < lr_factor(9, 100, 10, "linear") <= 1.0
    assert lr_factor(10, 100, 10, "cosine") == 1.0
    assert abs(lr_factor(55, 100, 10, "cosine") - 0.5) < 1e-9
    assert lr_factor(100, 100, 10, "linear") == 0.0
    assert lr_factor(50, 100, 0, "constant") == 1.0
