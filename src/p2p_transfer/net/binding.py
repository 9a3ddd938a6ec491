"""The one fix applied to the iroh Python binding: copy byte buffers in one call.

The generated ``_UniffiRustBufferBuilder.write`` copies bytes one by one in a
Python loop, which caps ``SendStream.write_all`` near 6 MB/s. This replaces it
with a single ``ctypes.memmove`` into the reserved Rust buffer. The fix checks
the binding's shape first and fails loudly if it changed, rather than patching
something it does not understand.
"""

from __future__ import annotations

import ctypes
from typing import Any

from iroh import iroh_ffi

from p2p_transfer.errors import LocalFault

_BUILDER: Any = getattr(iroh_ffi, "_UniffiRustBufferBuilder", None)
_ORIGINAL_WRITE = getattr(_BUILDER, "write", None)
#: What the generated write uses: ``self._reserve(len(value))``, then ``self.rbuf.data``.
_WRITE_NAMES = frozenset({"_reserve", "len", "rbuf", "data"})


class BindingChangedError(LocalFault, RuntimeError):
    """The iroh binding no longer has the shape this fix was written for."""


def _fast_write(self: Any, value: Any) -> None:
    """Append ``value`` (any buffer) to the Rust buffer with one memmove."""
    view = memoryview(value)
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    view = view.cast("B")
    size = view.nbytes
    with self._reserve(size):
        if size:
            destination = ctypes.addressof(self.rbuf.data.contents) + self.rbuf.len
            if view.readonly:
                source: Any = bytes(view) if not isinstance(value, bytes) else value
                ctypes.memmove(destination, source, size)
            else:
                ctypes.memmove(destination, (ctypes.c_char * size).from_buffer(view), size)


def _check_shape() -> None:
    if _BUILDER is None or _ORIGINAL_WRITE is None:
        raise BindingChangedError("iroh binding has no _UniffiRustBufferBuilder.write")
    if not hasattr(_BUILDER, "_reserve"):
        raise BindingChangedError("iroh binding's buffer builder has no _reserve")
    # Read from its code, not its source: the source would keep the binding's ~10,700
    # lines in linecache (~1 MB of every process).
    code = _ORIGINAL_WRITE.__code__
    if code.co_varnames[:2] != ("self", "value") or not _WRITE_NAMES.issubset(code.co_names):
        raise BindingChangedError("iroh binding's buffer write changed; review net/binding.py")
    fields = dict(getattr(iroh_ffi._UniffiRustBuffer, "_fields_", []))
    if set(fields) != {"capacity", "len", "data"}:
        raise BindingChangedError("iroh RustBuffer layout changed; review net/binding.py")


def apply_binding_fix() -> None:
    """Install the fast buffer write once; later calls do nothing."""
    if is_binding_fix_applied():
        return
    _check_shape()
    _BUILDER.write = _fast_write


def is_binding_fix_applied() -> bool:
    """True when the fast write is in effect."""
    return getattr(_BUILDER, "write", None) is _fast_write
