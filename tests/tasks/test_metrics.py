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


def test_macro_f1_averages_only_the_classes_present_in_the_split():
    # "negativ" is a typo'd label: a class of its own with no row in this split
    labels = ["negative", "negativ", "positive"]
    m = classification_metrics([0, 0, 2, 2], [0, 0, 2, 2], labels)
    assert m["macro_f1"] == 1.0  # not 2/3: the absent class does not count
    assert m["macro_classes"] == ["negative", "positive"] and m["absent_classes"] == ["negativ"]
    assert m["per_class"]["negativ"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "present": False}
    assert m["per_class"]["negative"]["present"] and len(m["confusion"]) == 3


def test_predicting_an_absent_class_still_costs_the_present_ones():
    m = classification_metrics([0, 0, 2, 2], [1, 0, 2, 2], ["a", "b", "c"])
    f1_a, f1_c = 2 * 1 * 0.5 / 1.5, 2 * 1 * 1 / 2
    assert abs(m["macro_f1"] - (f1_a + f1_c) / 2) < 1e-9
    assert m["absent_classes"] == ["b"] and m["per_class"]["b"]["precision"] == 0.0
