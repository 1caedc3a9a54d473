"""Drawing detections: class colours, contrasting label text, boxes where the detections are."""

import numpy as np
import pytest

from yolox.utils.visualize import class_color, class_name, contrasting_text_color, draw_detections, label_text


def test_class_colors_are_stable_and_distinct_for_80_classes():
    colors = [class_color(i) for i in range(80)]
    assert colors == [class_color(i) for i in range(80)]
    assert len(set(colors)) == 80
    assert all(0 <= channel <= 255 for color in colors for channel in color)


@pytest.mark.parametrize("background, expected", [((0, 0, 0), (255, 255, 255)), ((255, 255, 255), (0, 0, 0)),
                                                  ((30, 200, 240), (0, 0, 0)), ((120, 20, 20), (255, 255, 255))])
def test_text_color_contrasts_with_background(background, expected):
    assert contrasting_text_color(background) == expected


def test_label_text_uses_name_or_index():
    assert label_text(1, 0.876, ["cat", "dog"]) == "dog 0.88"
    assert label_text(5, 0.5, ["cat", "dog"]) == "class 5 0.50"
    assert label_text(0, 0.25) == "class 0 0.25"
    assert class_name(1, ("cat", "dog")) == "dog" and class_name(-1, ("cat",)) == "class -1"


@pytest.mark.parametrize("fill", [0, 255])
def test_box_and_label_drawn_only_around_the_detection(fill):
    image = np.full((120, 160, 3), fill, np.uint8)
    boxes = np.array([[40.0, 50.0, 120.0, 100.0]])
    drawn = draw_detections(image, boxes, np.array([0.9]), np.array([2]), ["a", "b", "c"])
    assert (image == fill).all(), "the input image must not be modified"
    changed = (drawn != image).any(axis=2)
    # The outline: every side of the box changed.
    assert changed[75, 40] and changed[75, 120] and changed[50, 80] and changed[100, 80]
    # The inside of the box and the far corners stay untouched.
    assert not changed[60:95, 45:115].any()
    assert not changed[105:, :].any() and not changed[:, 125:].any()
    # The label sits above the box on a filled background and its text contrasts with that fill.
    label = drawn[30:49, 41:100]
    color = np.array(class_color(2))
    text = np.array(contrasting_text_color(class_color(2)))
    assert (label == color).all(axis=2).sum() > 50
    assert (label == text).all(axis=2).sum() > 5


def test_low_scores_are_skipped_and_boxes_are_clipped():
    image = np.full((64, 64, 3), 90, np.uint8)
    skipped = draw_detections(image, np.array([[5.0, 5.0, 30.0, 30.0]]), np.array([0.2]), np.array([0]),
                              score_threshold=0.3)
    assert (skipped == image).all()
    clipped = draw_detections(image, np.array([[-20.0, -10.0, 200.0, 300.0]]), np.array([0.8]), np.array([0]))
    assert (clipped != image).any(axis=2)[32, 0] and (clipped != image).any(axis=2)[32, 63]


def test_no_detections_returns_an_equal_copy():
    image = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    drawn = draw_detections(image, np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    assert drawn is not image and (drawn == image).all()
