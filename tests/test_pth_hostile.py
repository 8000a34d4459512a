"""The .pth reader against crafted files: out-of-bounds tensor records, memory bombs, state
poisoning, and a seeded fuzz run.

Files are written opcode by opcode (the helpers below), so each test says exactly which pickle
instructions the hostile file holds. Anything that could crash the interpreter if the reader
regressed runs in a child process that imports only ``course_utils/io/pth.py`` (no TensorFlow), with
a memory limit and a timeout.
"""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from course_utils.models.efficientnet_lite import _weights_path as default_lite_weights_path
from course_utils.io.pth import _CorruptWeightsError as CorruptWeightsError, _UnsafePickleError as UnsafePickleError, load_pth_state_dict

PACKAGE = Path(__file__).resolve().parents[1] / "course_utils"
MAGIC = 0x1950A86A20F9469CFC6C


# --- a tiny pickle writer ------------------------------------------------------------------


def _str(s: str) -> bytes:
    data = s.encode()
    return b"X" + struct.pack("<I", len(data)) + data  # BINUNICODE


def _int(n: int) -> bytes:
    data = n.to_bytes((n.bit_length() + 8) // 8, "little", signed=True) if n else b""
    return b"\x8a" + bytes([len(data)]) + data  # LONG1: any size, any sign


def _global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()  # GLOBAL


def _tuple(*items: bytes) -> bytes:
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _tensor(key: str, numel: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...], storage: str = "FloatStorage") -> bytes:
    """``torch._utils._rebuild_tensor_v2(<storage key, numel>, offset, size, stride, False, {})``."""
    pid = _tuple(_str("storage"), _global("torch", storage), _str(key), _str("cpu"), _int(numel)) + b"Q"  # BINPERSID
    args = _tuple(pid, _int(offset), _tuple(*map(_int, size)), _tuple(*map(_int, stride)), b"\x89", b"}")
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"  # REDUCE


def _state_dict(entries: dict[str, bytes], prelude: bytes = b"") -> bytes:
    """A protocol-2 pickle of ``OrderedDict(entries)``, with ``prelude`` run first (and popped)."""
    items = b"".join(_str(name) + tensor for name, tensor in entries.items())
    return b"\x80\x02" + prelude + _global("collections", "OrderedDict") + b")R" + b"(" + items + b"u."


def legacy_file(state: bytes, storages: dict[str, np.ndarray]) -> bytes:
    """A complete legacy .pth file: header pickles, ``state``, the key list and the raw storages."""
    out = b"".join(pickle.dumps(part, protocol=2) for part in (MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}))
    out += state + pickle.dumps(list(storages), protocol=2)
    for data in storages.values():
        out += struct.pack("<q", data.size) + data.tobytes()
    return out


def one_tensor_file(numel: int, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> bytes:
    data = np.arange(numel, dtype=np.float32)
    return legacy_file(_state_dict({"w": _tensor("0", numel, offset, size, stride)}), {"0": data})


def small_valid_file() -> bytes:
    """Three tensors over two storages: a strided (channels-last) matrix, a bias, a counter."""
    state = _state_dict({
        "conv.weight": _tensor("0", 6, 0, (2, 3), (1, 2)),
        "conv.bias": _tensor("1", 4, 1, (3,), (1,)),
        "bn.num_batches_tracked": _tensor("2", 1, 0, (), (), storage="LongStorage"),
    })
    return legacy_file(state, {"0": np.arange(6, dtype=np.float32), "1": np.arange(4, dtype=np.float32) * 10, "2": np.array([7])})


def _run_child(code: str, timeout: float = 60) -> dict:
    """Run ``code`` in a fresh interpreter that has the reader as ``pth`` (address space capped at
    3 GiB); return the JSON it prints last. A crash shows as a non-zero return code."""
    prelude = textwrap.dedent(f"""
        import json, resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 * 1024**3, 3 * 1024**3))
        import types
        for name, path in (("course_utils", {str(PACKAGE)!r}), ("course_utils.io", {str(PACKAGE / "io")!r})):
            stub = sys.modules[name] = types.ModuleType(name)  # the packages without their __init__ (TensorFlow)
            stub.__path__ = [path]
        import course_utils.io.pth as pth
        assert "tensorflow" not in sys.modules
    """)
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"the reader crashed the interpreter (rc {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the valid baseline ---------------------------------------------------------------------


def test_the_crafted_baseline_is_read_correctly(tmp_path):
    path = tmp_path / "ok.pth"
    path.write_bytes(small_valid_file())
    state = load_pth_state_dict(path)
    assert list(state) == ["conv.weight", "conv.bias", "bn.num_batches_tracked"]
    np.testing.assert_array_equal(state["conv.weight"], np.arange(6, dtype=np.float32).reshape(3, 2).T)
    np.testing.assert_array_equal(state["conv.bias"], [10, 20, 30])
    assert state["bn.num_batches_tracked"].shape == () and state["bn.num_batches_tracked"] == 7


# --- out-of-bounds and oversized tensor records ---------------------------------------------

HOSTILE_RECORDS = {
    # name: (numel, offset, size, stride, message)
    "negative_stride": (4, 3, (1_000_000,), (-1,), "has a stride that is not a list of at most 32 whole numbers in 0..2**40: (-1,)"),
    "stride_minus_2_40": (4, 3, (2,), (-(2**40),), "stride that is not a list of at most 32 whole numbers in 0..2**40: (-1099511627776,)"),
    "negative_offset": (4, -2, (2,), (1,), "storage offset that is not a whole number in 0..2**40: -2"),
    "negative_size": (4, 0, (-3,), (1,), "size that is not a list of at most 32 whole numbers in 0..2**40: (-3,)"),
    "giant_size": (4, 0, (2**200,), (1,), "size that is not a list of at most 32 whole numbers in 0..2**40: (a 201-bit number,)"),
    "past_the_end": (4, 2, (3,), (1,), "reaches element 4"),
    "huge_stride_past_the_end": (4, 0, (2,), (2**39,), "reaches element 549755813888 of a storage that holds 4"),
    "zero_stride_huge_shape": (1, 0, (100_000, 100_000), (0, 0), "has 10000000000 elements (size (100000, 100000)) but its storage holds only 1"),
    "more_elements_than_storage": (4, 0, (3, 3), (0, 1), "9 elements"),
    "sizes_and_strides_differ": (4, 0, (2, 2), (1,), "2 sizes but 1 strides"),
    "offset_past_end_empty": (4, 9, (0,), (1,), "past the end"),
    "scalar_past_end": (4, 4, (), (), "reaches element 4"),
    "too_many_dims": (4, 0, (1,) * 40, (1,) * 40, "at most 32 whole numbers in 0..2**40: a tuple of 40 items"),
}


def _load_in_child(path: Path) -> dict:
    """Load ``path`` in a child process: ``{"error": class name or None, "message": ...}``."""
    return _run_child(f"""
        try:
            state = pth.load_pth_state_dict({str(path)!r})
            print(json.dumps({{"error": None, "message": "", "sizes": [int(v.size) for v in state.values()]}}))
        except Exception as err:
            print(json.dumps({{"error": type(err).__name__, "message": str(err)}}))
    """, timeout=30)


@pytest.mark.parametrize("case", sorted(HOSTILE_RECORDS))
def test_out_of_bounds_records_are_refused_in_a_child(tmp_path, case):
    """Run in a child process: before the fix, negative strides segfaulted or read heap memory."""
    numel, offset, size, stride, message = HOSTILE_RECORDS[case]
    path = tmp_path / f"{case}.pth"
    path.write_bytes(one_tensor_file(numel, offset, size, stride))
    result = _load_in_child(path)
    assert result["error"] == "_CorruptWeightsError", result
    assert "tensor 'w'" in result["message"] and message in result["message"], result["message"]


def test_a_335_byte_file_cannot_ask_for_gigabytes(tmp_path):
    """A zero stride and a huge shape: once 40 GB of zeros-to-be from a file of a few hundred bytes."""
    path = tmp_path / "bomb.pth"
    path.write_bytes(one_tensor_file(1, 0, (100_000, 100_000), (0, 0)))
    assert path.stat().st_size < 400
    with pytest.raises(CorruptWeightsError, match=r"'w' has 10000000000 elements \(size \(100000, 100000\)\) but its storage holds only 1"):
        load_pth_state_dict(path)


def test_max_bytes_caps_the_total(tmp_path):
    path = tmp_path / "ok.pth"
    path.write_bytes(small_valid_file())
    with pytest.raises(CorruptWeightsError, match="max_bytes"):
        load_pth_state_dict(path, max_bytes=len(path.read_bytes()) - 1)
    with pytest.raises(CorruptWeightsError, match="max_bytes"):
        load_pth_state_dict(path, max_bytes=30)  # file fits, storages (24 + 16 + 8 bytes) do not


def test_a_file_without_tensors_is_an_error(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(legacy_file(_state_dict({}), {}))
    with pytest.raises(CorruptWeightsError, match="holds no tensors"):
        load_pth_state_dict(path)


def test_a_storage_declared_twice_differently_is_refused(tmp_path):
    state = _state_dict({"a": _tensor("0", 4, 0, (4,), (1,)), "b": _tensor("0", 4, 0, (4,), (1,), storage="LongStorage")})
    path = tmp_path / "twice.pth"
    path.write_bytes(legacy_file(state, {"0": np.arange(4, dtype=np.float32)}))
    with pytest.raises(CorruptWeightsError, match="declared twice"):
        load_pth_state_dict(path)


# --- state poisoning --------------------------------------------------------------------------

# BUILD with a dict state on an allowed global, then POP: before the fix this rewrote the shared
# FloatStorage so that every later load in the process read float weights as int32.
POISON = {
    "FloatStorage_as_int": _global("torch", "FloatStorage") + b"}" + _str("name") + _str("IntStorage") + b"sb0",
    "FloatStorage_slots": _global("torch", "FloatStorage") + _tuple(b"N", b"}" + _str("name") + _str("IntStorage") + b"s") + b"b0",
    "rebuild_defaults": _global("torch._utils", "_rebuild_tensor_v2") + _tuple(b"N", b"}" + _str("__defaults__") + _tuple(b"N") + b"s") + b"b0",
    "OrderedDict_class": _global("collections", "OrderedDict") + b"}" + _str("fromkeys") + b"Nsb0",
}


@pytest.fixture(scope="module")
def lite0_reference() -> dict[str, np.ndarray]:
    return load_pth_state_dict(default_lite_weights_path("efficientnet_lite0"))


@pytest.mark.parametrize("case", sorted(POISON))
def test_build_on_an_allowed_global_is_refused(tmp_path, case, lite0_reference):
    state = _state_dict({"w": _tensor("0", 2, 0, (2,), (1,))}, prelude=POISON[case])
    path = tmp_path / "poison.pth"
    path.write_bytes(legacy_file(state, {"0": np.array([1.5, 2.5], np.float32)}))
    with pytest.raises(UnsafePickleError, match=r"tried to set the state of the reader's '(FloatStorage|_rebuild_tensor_v2|OrderedDict)' \(pickle BUILD\)"):
        load_pth_state_dict(path)
    # The process is unharmed: the shipped weights still read as they did before the attempt.
    again = load_pth_state_dict(default_lite_weights_path("efficientnet_lite0"))
    assert list(again) == list(lite0_reference)
    stem = again["_conv_stem.weight"]
    assert stem.dtype == np.float32 and np.isfinite(stem).all()
    for name, value in again.items():
        assert value.dtype == lite0_reference[name].dtype and np.array_equal(value, lite0_reference[name]), name


def test_build_on_a_tensor_or_storage_is_refused(tmp_path):
    """A BUILD right after a tensor record, trying to widen it after it was made."""
    widen = b"}" + _str("size") + _tuple(_int(10**6)) + b"sb"
    state = b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + _str("w") + _tensor("0", 2, 0, (2,), (1,)) + widen + b"u."
    path = tmp_path / "widen.pth"
    path.write_bytes(legacy_file(state, {"0": np.array([1.5, 2.5], np.float32)}))
    with pytest.raises(UnsafePickleError, match="_TensorRecord"):
        load_pth_state_dict(path)


@pytest.mark.parametrize(
    "opcode, name",
    [(b"\x81", "NEWOBJ"), (b"\x82\x01", "EXT1"), (b"\x8f", "EMPTY_SET"), (b"i" + b"os\nsystem\n", "INST")],
)
def test_object_building_instructions_are_refused(tmp_path, opcode, name):
    state = b"\x80\x02" + _global("collections", "OrderedDict") + b")" + opcode + b"."
    path = tmp_path / "op.pth"
    path.write_bytes(legacy_file(state, {}))
    with pytest.raises(UnsafePickleError, match=name):
        load_pth_state_dict(path)


def test_shared_nested_keys_cannot_hang_the_reader(tmp_path):
    """A dict key of 60 levels of (t, t) sharing their parts: hashing it would take 2**60 steps
    (a hang before the fix, so it runs in a child with a timeout)."""
    nest = _str("x") + b"q\x000"  # BINPUT 0, POP
    for _ in range(60):
        nest += b"h\x00h\x00\x86q\x000"  # BINGET 0, BINGET 0, TUPLE2, BINPUT 0, POP
    state = b"\x80\x02}" + nest + b"h\x00Ns."  # {nest: None}
    path = tmp_path / "hashbomb.pth"
    path.write_bytes(legacy_file(state, {}))
    result = _load_in_child(path)
    assert result["error"] == "_CorruptWeightsError" and "dictionary key" in result["message"], result


# --- fuzzing ------------------------------------------------------------------------------------


def test_random_mutations_never_crash_hang_or_over_allocate():
    """600 seeded mutants of a valid file (byte flips, truncations, insertions, integer
    rewrites): each loads or fails with the course's own errors, and nothing it returns is larger
    than the mutant file itself. Runs in a child: a crash or a hang cannot take the tests down."""
    result = _run_child(f"""
        import faulthandler, random, numpy as np
        faulthandler.dump_traceback_later(50, exit=True)
        base = bytes.fromhex({small_valid_file().hex()!r})
        rng = random.Random(20240611)
        outcomes, problems = {{}}, []
        import os, tempfile
        path = os.path.join(tempfile.mkdtemp(), "mutant.pth")
        for i in range(600):
            data = bytearray(base)
            for _ in range(rng.randint(1, 4)):
                kind = rng.choice(["flip", "byte", "truncate", "insert", "int"])
                pos = rng.randrange(len(data))
                if kind == "flip":
                    data[pos] ^= 1 << rng.randrange(8)
                elif kind == "byte":
                    data[pos] = rng.randrange(256)
                elif kind == "truncate":
                    del data[pos:]
                    if not data:
                        data = bytearray(b"\\x80")
                elif kind == "insert":
                    data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
                else:  # rewrite a LONG1 integer (sizes, strides, offsets) to something extreme
                    spots = [j for j in range(len(data) - 1) if data[j] == 0x8a and data[j + 1] <= 8]
                    if spots:
                        j = rng.choice(spots)
                        value = rng.choice([-1, -(2**40), 2**31, 2**62, 10**6, 0])
                        enc = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True) if value else b""
                        data[j:j + 2 + data[j + 1]] = b"\\x8a" + bytes([len(enc)]) + enc
            with open(path, "wb") as f:
                f.write(data)
            try:
                state = pth.load_pth_state_dict(path)
                outcome = "ok"
                if any(v.nbytes > len(data) for v in state.values()):
                    problems.append((i, "returned more bytes than the file holds"))
            except (pth._CorruptWeightsError, pth._UnsafePickleError):
                outcome = "refused"
            except BaseException as err:
                outcome = "other"
                problems.append((i, f"{{type(err).__name__}}: {{err}}"[:300]))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        print(json.dumps({{"outcomes": outcomes, "problems": problems}}))
    """, timeout=90)
    assert result["problems"] == [], result["problems"][:5]
    assert result["outcomes"].get("refused", 0) > 100, result["outcomes"]  # the mutations did bite
