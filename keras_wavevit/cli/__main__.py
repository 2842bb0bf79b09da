"""`python -m keras_wavevit.cli`: the `keras-wavevit` command."""

from keras_wavevit.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
