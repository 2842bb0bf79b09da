"""Settings for every test and docstring example (and the processes they start).

Quiet TensorFlow logs. XLA (JAX's every step; TensorFlow's `jit_compile` and
fused kernels) compiles the tests' small programs without LLVM's backend
optimisations: compiling is most of their cost (a micro Wave-ViT builds 3x
faster on JAX, one compiled variable initialiser at a time), the HLO passes
are unchanged (results agree to float32 rounding), and a test runs each
program once or twice. An `XLA_FLAGS` already set is left as it is.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
