"""What the CPU is and whether it computes bfloat16 natively.

Read from `/proc/cpuinfo` (Linux); elsewhere the model is unknown and no
flag is reported, so the answers fall back to the safe side (float32).

Example:

>>> model, flags = cpu_description()
>>> isinstance(model, str) and isinstance(flags, frozenset)
True
"""

import functools

# Instruction sets with native bfloat16 dot products: AVX512_BF16 (Intel
# Cooper Lake and later, AMD Zen 4 and later) and AMX-BF16 (Intel Sapphire
# Rapids and later). Elsewhere TensorFlow emulates bfloat16 matmuls, which
# makes mixed bfloat16 slower than float32.
BFLOAT16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
# AMX tiles with bfloat16 dot products (Intel Sapphire Rapids and later).
AMX_BFLOAT16_FLAG = "amx_bf16"


def cpu_description(cpuinfo_path="/proc/cpuinfo"):
    """The CPU's model name and its instruction-set flags.

    Args:
        cpuinfo_path: The file to read (Linux' `/proc/cpuinfo` format).

    Returns:
        `(model, flags)`: the first `model name` (`"unknown"` if none) and
        the first `flags` line as a frozenset (empty where the file is
        missing or unreadable).

    Example:

    >>> model, flags = cpu_description("/no/such/file")
    >>> model, flags
    ('unknown', frozenset())
    """
    model, flags = "unknown", frozenset()
    try:
        with open(cpuinfo_path, encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown":
                    model = value.strip()
                elif key == "flags":
                    flags = frozenset(value.split())
                    break
    except OSError:
        pass
    return model, flags


@functools.lru_cache(maxsize=None)
def _this_cpu_flags():
    """This CPU's flags, read from `/proc/cpuinfo` once per process."""
    return cpu_description()[1]


def has_native_bfloat16(flags=None):
    """Whether the CPU computes bfloat16 matmuls natively (AVX512_BF16 or AMX-BF16).

    Args:
        flags: Instruction-set flags; by default this CPU's (read once).

    Returns:
        bool.

    Example:

    >>> has_native_bfloat16({"avx2", "fma"}), has_native_bfloat16({"avx512f", "avx512_bf16"})
    (False, True)
    """
    if flags is None:
        flags = _this_cpu_flags()
    return bool(BFLOAT16_FLAGS & set(flags))


def has_amx_bfloat16(flags=None):
    """Whether the CPU has AMX tiles for bfloat16 matmuls (AMX-BF16).

    Args:
        flags: Instruction-set flags; by default this CPU's (read once).

    Returns:
        bool.

    Example:

    >>> has_amx_bfloat16({"avx512f", "avx512_bf16"}), has_amx_bfloat16({"amx_tile", "amx_bf16"})
    (False, True)
    """
    if flags is None:
        flags = _this_cpu_flags()
    return AMX_BFLOAT16_FLAG in set(flags)
