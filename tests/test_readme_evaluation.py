"""The README's official-evaluation snippet, run as written against saved weights."""

import contextlib
import io
import os
import re

import numpy as np
from PIL import Image

import keras_wavevit
from tests.test_export import REPO_ROOT


def _snippet():
    """The Python block of the README paragraph "Evaluating a converted model"."""
    with open(os.path.join(REPO_ROOT, "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    section = readme[readme.index("**Evaluating a converted model.**"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_official_evaluation_snippet_runs_and_names_imagenet_classes(tmp_path, monkeypatch):
    snippet = _snippet()
    assert "preprocess_official(image)" in snippet and "decode_predictions" in snippet
    monkeypatch.chdir(tmp_path)
    keras_wavevit.WaveViTSmall(token_label=True).save_weights("wavevit_s.weights.h5")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)).save("dog.jpg")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(snippet, "README.md", "exec"), {})
    top5 = eval(printed.getvalue())  # the printed list of (wnid, name, score) tuples
    assert len(top5) == 5
    for wnid, name, score in top5:
        assert name in keras_wavevit.IMAGENET_CLASS_NAMES and wnid.startswith("n")
        assert isinstance(score, float)
    assert [score for _, _, score in top5] == sorted((s for _, _, s in top5), reverse=True)
