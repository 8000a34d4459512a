"""The restricted .pth reader: real weights load, hostile or damaged files are refused."""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from course_utils.models.efficientnet_lite import _weights_path as default_lite_weights_path
from course_utils.io.pth import _CorruptWeightsError as CorruptWeightsError, _UnsafePickleError as UnsafePickleError, load_pth_state_dict

MAGIC = 0x1950A86A20F9469CFC6C


@pytest.fixture(scope="module")
def lite0_bytes() -> bytes:
    return default_lite_weights_path("efficientnet_lite0").read_bytes()


def test_reads_the_shipped_efficientnet_weights():
    state = load_pth_state_dict(default_lite_weights_path("efficientnet_lite0"))
    assert len(state) == 296
    weights = sum(v.size for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert weights == 4_694_024
    stem = state["_conv_stem.weight"]
    assert stem.shape == (32, 3, 3, 3) and stem.dtype == np.float32 and stem.flags.c_contiguous
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_bn0.num_batches_tracked"].dtype == np.int64


class _Boom:
    """A pickle that would run os.system when loaded by an ordinary unpickler."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/course_utils_pwned",))


def _legacy_file(tmp_path: Path, payload: object) -> Path:
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for part in (MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(part, f, protocol=2)
        pickle.dump(payload, f, protocol=2)
        pickle.dump([], f, protocol=2)
    return path


def test_refuses_a_crafted_pickle_without_running_it(tmp_path):
    marker = Path("/tmp/course_utils_pwned")
    marker.unlink(missing_ok=True)
    path = _legacy_file(tmp_path, collections.OrderedDict(x=_Boom()))
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|refused"):
        load_pth_state_dict(path)
    assert not marker.exists(), "the payload ran"


def test_refuses_a_crafted_header(tmp_path):
    path = tmp_path / "evil_header.pth"
    path.write_bytes(pickle.dumps(_Boom(), protocol=2))
    with pytest.raises(UnsafePickleError):
        load_pth_state_dict(path)


def test_truncated_file_is_reported(tmp_path, lite0_bytes):
    path = tmp_path / "truncated.pth"
    path.write_bytes(lite0_bytes[: len(lite0_bytes) // 2])
    with pytest.raises(CorruptWeightsError, match="truncated"):
        load_pth_state_dict(path)


def test_garbage_and_zip_and_missing(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00\x01 not a pickle at all" * 10)
    with pytest.raises(CorruptWeightsError):
        load_pth_state_dict(garbage)
    zipped = tmp_path / "new_format.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(CorruptWeightsError, match="zip-format"):
        load_pth_state_dict(zipped)
    with pytest.raises(FileNotFoundError):
        load_pth_state_dict(tmp_path / "nowhere.pth")


def test_strided_tensors_are_read_in_logical_order(tmp_path):
    """A tensor stored channels-last (as the shipped conv kernels are) comes back in PyTorch order."""

    class FloatStorage:  # pickled by reference as torch.FloatStorage
        pass

    FloatStorage.__module__, FloatStorage.__qualname__ = "torch", "FloatStorage"
    logical = np.arange(6, dtype=np.float32).reshape(2, 3)
    stored = logical.T.copy()  # memory order (3, 2): stride (1, 2) in elements

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", FloatStorage, "0", "cpu", 6, None) if obj is stored else None

    def rebuild(*args):  # stand-in for torch._utils._rebuild_tensor_v2
        raise AssertionError

    rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"

    class Tensor:
        def __reduce__(self):
            return (rebuild, (stored, 0, (2, 3), (1, 2), False, collections.OrderedDict()))

    import sys
    import types

    fake_torch = types.ModuleType("torch")
    fake_torch.FloatStorage = FloatStorage
    fake_utils = types.ModuleType("torch._utils")
    fake_utils._rebuild_tensor_v2 = rebuild
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        path = tmp_path / "strided.pth"
        with open(path, "wb") as f:
            for part in (MAGIC, 1001, {"little_endian": True}):
                pickle.dump(part, f, protocol=2)
            Pickler(f, protocol=2).dump(collections.OrderedDict(w=Tensor()))
            pickle.dump(["0"], f, protocol=2)
            f.write(struct.pack("<q", 6) + stored.tobytes())
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    state = load_pth_state_dict(path)
    np.testing.assert_array_equal(state["w"], logical)
