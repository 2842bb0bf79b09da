"""CPU facts: the model name and flags from /proc/cpuinfo, native bfloat16."""

from keras_wavevit import hardware

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16
bugs\t\t: sysret_ss_attrs

processor\t: 1
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse2
"""


def test_cpu_description_reads_the_first_model_and_flags(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    model, flags = hardware.cpu_description(str(path))
    assert model == "AMD EPYC 9R14"
    assert flags == frozenset({"fpu", "sse2", "avx2", "fma", "avx512f", "avx512_bf16"})
    assert hardware.has_native_bfloat16(flags)


def test_cpu_description_without_the_file_reports_nothing(tmp_path):
    assert hardware.cpu_description(str(tmp_path / "missing")) == ("unknown", frozenset())


def test_native_bfloat16_needs_avx512_bf16_or_amx():
    assert not hardware.has_native_bfloat16({"avx2", "fma", "avx512f", "avx512_vnni"})
    assert hardware.has_native_bfloat16({"avx2", "amx_tile", "amx_bf16"})
    assert hardware.has_native_bfloat16({"avx512_bf16"})
    assert not hardware.has_native_bfloat16(set())


def test_amx_bfloat16_needs_the_amx_bf16_flag(tmp_path, monkeypatch):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    assert not hardware.has_amx_bfloat16(hardware.cpu_description(str(path))[1])
    assert hardware.has_amx_bfloat16({"avx512f", "amx_tile", "amx_bf16"})
    assert not hardware.has_amx_bfloat16({"amx_tile", "amx_int8"})
    # By default, this CPU's flags.
    monkeypatch.setattr(hardware, "_this_cpu_flags", lambda: frozenset({"amx_bf16"}))
    assert hardware.has_amx_bfloat16()
