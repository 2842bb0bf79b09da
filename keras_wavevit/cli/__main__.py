"""`python -m keras_wavevit.cli`: the `keras-wavevit` command."""

from keras_wavevit.cli import main

raise SystemExit(main())
