"""Figures: confusion matrix counts, argument checks, and no change to the caller's matplotlib."""

import os

import matplotlib
import numpy as np
import pytest

from keras_wavevit.recipes import plots

PNG = b"\x89PNG\r\n\x1a\n"


def test_confusion_matrix_and_figures(tmp_path):
    matrix = plots.confusion_matrix([0, 1, 2, 2], [0, 2, 2, 1], 3)
    assert matrix.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    path = plots.plot_confusion_matrix(matrix, ["a", "b", "c"], str(tmp_path / "cm.png"))
    assert open(path, "rb").read(8) == PNG
    with pytest.raises(ValueError, match="square"):
        plots.plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"], str(tmp_path / "x.png"))
    with pytest.raises(ValueError, match="loss"):
        plots.plot_learning_curves({}, str(tmp_path))
    with pytest.raises(ValueError, match="same"):
        plots.plot_prediction_grid(np.zeros((2, 8, 8, 3)), [0], [0, 1], ["a", "b"], "x.png")


def test_plots_leave_the_callers_backend_and_figures_alone(tmp_path):
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    matplotlib.use("svg")  # a caller's own choice, not Agg
    try:
        caller_figure = plt.figure()
        written = plots.plot_learning_curves(
            {"loss": [2.0, 1.5], "val_loss": [1.9, 1.6], "accuracy": [0.3, 0.5]}, str(tmp_path)
        )
        written.append(plots.plot_prediction_grid(
            np.zeros((2, 8, 8, 3), "uint8"), [0, 1], [0, 0], ["a", "b"], str(tmp_path / "g.png")
        ))
        assert matplotlib.get_backend() == "svg"
        assert plt.get_fignums() == [caller_figure.number]  # no figure left open
        assert plt.gcf() is caller_figure
        for path in written:
            assert open(path, "rb").read(8) == PNG
        assert not [name for name in os.listdir(tmp_path) if name.startswith(".partial-")]
    finally:
        plt.close("all")
        matplotlib.use(previous)
