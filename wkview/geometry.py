"""Geometry value types: :class:`Vec3Int`, :class:`Mag` and :class:`BoundingBox`.

They are immutable and hashable and mirror ``webknossos.geometry`` (release
0.8.13). The grid arithmetic behind them (alignment, chunk enumeration) is
computed by the compiled core, :mod:`wkview._core`.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Union

import numpy as np

from . import _core
from .errors import ChunkingError, ImmutableError, ShapeError

__all__ = ["Vec3Int", "Vec3IntLike", "Mag", "MagLike", "BoundingBox", "BoundingBoxNamedTuple"]


def _as_int(value: Any, name: str, whole: Any) -> int:
    if isinstance(value, (bool, np.bool_)) or not hasattr(value, "__index__"):
        raise TypeError(f"{name} must contain ints, got {whole!r}")
    return operator.index(value)


def _int3(value: Any, name: str) -> tuple[int, int, int]:
    """Validate and convert a 3-vector of ints; raise TypeError/ValueError naming it."""
    if type(value) is Vec3Int:
        return value  # type: ignore[return-value]
    if type(value) is tuple and len(value) == 3:
        a, b, c = value
        if type(a) is int and type(b) is int and type(c) is int:
            return value  # type: ignore[return-value]
    if isinstance(value, (str, bytes)) or not isinstance(value, (Iterable, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of 3 ints, got {value!r}")
    items = list(value) if not isinstance(value, np.ndarray) else value.tolist()
    if isinstance(value, np.ndarray) and value.ndim != 1:
        raise ShapeError(f"{name} must be a flat sequence of 3 ints, got shape {value.shape}")
    if len(items) != 3:
        raise ShapeError(f"{name} must have 3 coordinates, got {value!r}")
    return (_as_int(items[0], name, value), _as_int(items[1], name, value), _as_int(items[2], name, value))


class Vec3Int(tuple):
    """An immutable (x, y, z) vector of ints.

    It is a tuple (so it compares and hashes like one and converts with
    ``np.array``), with element-wise ``+ - * // %`` against ints and other
    3-vectors.
    """

    __slots__ = ()

    def __new__(cls, *args: Any) -> "Vec3Int":
        if len(args) == 1:
            return tuple.__new__(cls, _int3(args[0], "Vec3Int"))
        if len(args) == 3:
            return tuple.__new__(cls, _int3(args, "Vec3Int"))
        raise ShapeError(f"Vec3Int takes one 3-sequence or three ints, got {args!r}")

    @classmethod
    def _trusted(cls, x: int, y: int, z: int) -> "Vec3Int":
        return tuple.__new__(cls, (x, y, z))

    @property
    def x(self) -> int:
        return self[0]

    @property
    def y(self) -> int:
        return self[1]

    @property
    def z(self) -> int:
        return self[2]

    def to_tuple(self) -> tuple[int, int, int]:
        return (self[0], self[1], self[2])

    def to_list(self) -> list[int]:
        return [self[0], self[1], self[2]]

    def to_np(self) -> np.ndarray:
        return np.array(self, dtype=np.int64)

    def prod(self, *args: Any, **kwargs: Any) -> Any:
        """Product of the components. Accepts NumPy's reduction arguments, because
        ``np.prod(vec)`` calls this method."""
        if args or kwargs:
            return np.prod(np.asarray(self), *args, **kwargs)
        return self[0] * self[1] * self[2]

    def is_positive(self, strictly_positive: bool = False) -> bool:
        if strictly_positive:
            return all(v > 0 for v in self)
        return all(v >= 0 for v in self)

    @staticmethod
    def _other(other: Any) -> tuple[int, int, int] | None:
        if isinstance(other, (bool, np.bool_)):
            return None
        if isinstance(other, (int, np.integer)):
            o = int(other)
            return (o, o, o)
        if isinstance(other, (tuple, list)):
            # Raise instead of returning NotImplemented: Python would fall back to
            # tuple concatenation, so (1, 2) + Vec3Int(1, 2, 3) became a 5-tuple.
            return _int3(other, "operand")
        return None

    def _apply(self, other: Any, op: Any, reflected: bool = False) -> Any:
        if isinstance(other, np.ndarray):
            return op(other, np.asarray(self)) if reflected else op(np.asarray(self), other)
        o = Vec3Int._other(other)
        if o is None:
            return NotImplemented
        if reflected:
            return Vec3Int._trusted(op(o[0], self[0]), op(o[1], self[1]), op(o[2], self[2]))
        return Vec3Int._trusted(op(self[0], o[0]), op(self[1], o[1]), op(self[2], o[2]))

    def __add__(self, other: Any) -> Any:  # type: ignore[override]
        return self._apply(other, operator.add)

    def __radd__(self, other: Any) -> Any:
        return self._apply(other, operator.add, True)

    def __sub__(self, other: Any) -> Any:
        return self._apply(other, operator.sub)

    def __rsub__(self, other: Any) -> Any:
        return self._apply(other, operator.sub, True)

    def __mul__(self, other: Any) -> Any:  # type: ignore[override]
        return self._apply(other, operator.mul)

    def __rmul__(self, other: Any) -> Any:  # type: ignore[override]
        return self._apply(other, operator.mul, True)

    def __floordiv__(self, other: Any) -> Any:
        return self._apply(other, operator.floordiv)

    def __mod__(self, other: Any) -> Any:
        return self._apply(other, operator.mod)

    def __neg__(self) -> "Vec3Int":
        return Vec3Int._trusted(-self[0], -self[1], -self[2])

    def __repr__(self) -> str:
        return f"Vec3Int({self[0]},{self[1]},{self[2]})"


Vec3IntLike = Union[Vec3Int, tuple[int, int, int], list[int], np.ndarray]

_MAG_RE = re.compile(r"^(\d+)(?:-(\d+)-(\d+))?$")


def _mag_vector(value: Any) -> tuple[int, int, int]:
    if isinstance(value, Mag):
        return value.to_tuple()
    if isinstance(value, str):
        m = _MAG_RE.match(value.strip())
        if m is None:
            raise ValueError(f"Mag must look like '2' or '2-2-1', got {value!r}")
        if m.group(2) is None:
            v = int(m.group(1))
            vec = (v, v, v)
        else:
            vec = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
    elif isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        vec = (int(value),) * 3
    else:
        vec = _int3(value, "Mag")
    for v in vec:
        if v <= 0 or v & (v - 1):
            raise ValueError(f"Mag components must be positive powers of two, got {value!r}")
    return vec


class Mag:
    """A magnification (downsampling factor per axis): ``Mag(2)``, ``Mag("2-2-1")``,
    ``Mag([2, 2, 1])``. Components are positive powers of two.

    Mags order by their largest component (as in webknossos) and compare equal
    when all components are equal.
    """

    __slots__ = ("_mag",)

    def __init__(self, mag: "MagLike") -> None:
        object.__setattr__(self, "_mag", Vec3Int._trusted(*_mag_vector(mag)))

    def __setattr__(self, name: str, value: Any) -> None:
        raise ImmutableError(f"Mag is immutable (setting {name!r}); build a new Mag instead")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Mag, (self.to_tuple(),))

    @property
    def x(self) -> int:
        return self._mag[0]

    @property
    def y(self) -> int:
        return self._mag[1]

    @property
    def z(self) -> int:
        return self._mag[2]

    @property
    def max_dim(self) -> int:
        return max(self._mag)

    @property
    def max_dim_log2(self) -> int:
        return self.max_dim.bit_length() - 1

    def to_layer_name(self) -> str:
        """Folder name: ``"2"`` for isotropic mags, ``"2-2-1"`` otherwise."""
        x, y, z = self._mag
        return str(x) if x == y == z else self.to_long_layer_name()

    def to_long_layer_name(self) -> str:
        """Long folder name, always ``"x-y-z"``."""
        x, y, z = self._mag
        return f"{x}-{y}-{z}"

    def to_list(self) -> list[int]:
        return list(self._mag)

    to_array = to_list  # name used by webknossos 0.8

    def to_tuple(self) -> tuple[int, int, int]:
        return self._mag.to_tuple()

    def to_vec3_int(self) -> Vec3Int:
        return self._mag

    def to_np(self) -> np.ndarray:
        return np.array(self._mag, dtype=np.int64)

    as_np = to_np

    def __iter__(self) -> Iterator[int]:
        return iter(self._mag)

    def __hash__(self) -> int:
        return hash(("Mag", self._mag))

    @staticmethod
    def _coerce(other: Any) -> "Mag | None":
        if isinstance(other, Mag):
            return other
        try:
            return Mag(other)
        except (TypeError, ValueError):
            return None

    def __eq__(self, other: Any) -> bool:
        o = Mag._coerce(other)
        if o is None:
            return NotImplemented
        return self._mag == o._mag

    def __lt__(self, other: Any) -> bool:
        o = Mag._coerce(other)
        if o is None:
            return NotImplemented
        return (self.max_dim, self._mag) < (o.max_dim, o._mag)

    def __le__(self, other: Any) -> bool:
        o = Mag._coerce(other)
        if o is None:
            return NotImplemented
        return (self.max_dim, self._mag) <= (o.max_dim, o._mag)

    def __gt__(self, other: Any) -> bool:
        o = Mag._coerce(other)
        if o is None:
            return NotImplemented
        return (self.max_dim, self._mag) > (o.max_dim, o._mag)

    def __ge__(self, other: Any) -> bool:
        o = Mag._coerce(other)
        if o is None:
            return NotImplemented
        return (self.max_dim, self._mag) >= (o.max_dim, o._mag)

    def scaled_by(self, factor: int) -> "Mag":
        """This mag times ``factor`` (an int), as a new Mag: ``Mag(2).scaled_by(2) == Mag(4)``."""
        return Mag(self._mag * _as_int(factor, "factor", factor))

    def divided_by(self, d: int) -> "Mag":
        """This mag divided by ``d`` (an int), as a new Mag: ``Mag(4).divided_by(2) == Mag(2)``."""
        return Mag(self._mag // _as_int(d, "d", d))

    def divided(self, coord: Vec3IntLike) -> list[int]:
        """``coord // mag`` per axis, as a list: a mag-1 coordinate in voxels of this mag."""
        c = _int3(coord, "coord")
        m = self._mag
        return [c[0] // m[0], c[1] // m[1], c[2] // m[2]]

    def scale_by(self, factor: int) -> None:
        """Removed: a Mag is immutable. Use ``mag = mag.scaled_by(factor)``."""
        raise ImmutableError(
            "Mag is immutable: Mag.scale_by() of webknossos 0.8.13 changed the mag in place; "
            "use mag = mag.scaled_by(factor)"
        )

    def divide_by(self, d: int) -> None:
        """Removed: a Mag is immutable. Use ``mag = mag.divided_by(d)``."""
        raise ImmutableError(
            "Mag is immutable: Mag.divide_by() of webknossos 0.8.13 changed the mag in place; "
            "use mag = mag.divided_by(d)"
        )

    def __mul__(self, factor: int) -> "Mag":
        return Mag(self._mag * factor)

    def __floordiv__(self, divisor: int) -> "Mag":
        return Mag(self._mag // divisor)

    def __str__(self) -> str:
        return self.to_layer_name()

    def __repr__(self) -> str:
        return f"Mag({self.to_layer_name()})"


MagLike = Union[int, str, list, tuple, np.ndarray, Mag, Vec3Int]


class BoundingBoxNamedTuple(NamedTuple):
    """A box as a plain named tuple: ``(topleft, size)``, each 3 ints."""

    topleft: tuple[int, int, int]
    size: tuple[int, int, int]


# what to call instead of setting an attribute of the (immutable) BoundingBox
_BBOX_SETTERS = {
    "topleft": "bbox.with_topleft(topleft)",
    "size": "bbox.with_size(size)",
    "bottomright": "bbox.with_bottomright(bottomright)",
}

# x_y_z_width_height_depth inside a longer name; a minus only right after "_" or at the start
# (so "run-1_2_3_4_5_6" is 1_2_3_..., as webknossos 0.8.13 read it)
_CHECKPOINT_RE = re.compile(r"(?<![0-9])((?:(?<![^_])-)?[0-9]+(?:_(?:(?<![^_])-)?[0-9]+){2}(?:_[0-9]+){3})")


class BoundingBox:
    """An axis-aligned box of voxels: ``topleft`` (inclusive) and ``size``.

    Compatible with ``webknossos.geometry.BoundingBox`` of release 0.8.13, but
    immutable and hashable; comparing with a non-box returns ``NotImplemented``
    (so ``box == 3`` is False) instead of raising. Sizes must not be
    negative; coordinates may be negative and arbitrarily large (the grid
    methods, such as :meth:`chunk` and :meth:`align_with_mag`, take values up to +-2**60).
    """

    __slots__ = ("_topleft", "_size")

    def __init__(self, topleft: Vec3IntLike, size: Vec3IntLike) -> None:
        tl = _int3(topleft, "topleft")
        sz = _int3(size, "size")
        if sz[0] < 0 or sz[1] < 0 or sz[2] < 0:
            raise ValueError(f"BoundingBox size must not be negative, got {tuple(sz)!r}")
        object.__setattr__(self, "_topleft", Vec3Int._trusted(*tl))
        object.__setattr__(self, "_size", Vec3Int._trusted(*sz))

    @classmethod
    def _trusted(cls, topleft: tuple[int, int, int], size: tuple[int, int, int]) -> "BoundingBox":
        """Build from already validated int tuples (internal fast path)."""
        box = object.__new__(cls)
        object.__setattr__(box, "_topleft", Vec3Int._trusted(*topleft))
        object.__setattr__(box, "_size", Vec3Int._trusted(*size))
        return box

    def __setattr__(self, name: str, value: Any) -> None:
        replacement = _BBOX_SETTERS.get(name, "offset(), padded_with_margins(), with_size(), ...")
        raise ImmutableError(
            f"BoundingBox is immutable (webknossos 0.8.13 allowed bbox.{name} = ...); "
            f"use bbox = {replacement}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (BoundingBox, (self._topleft.to_tuple(), self._size.to_tuple()))

    # -- constructors and conversions ------------------------------------------

    @classmethod
    def from_wkw(cls, bbox: dict[str, Any]) -> "BoundingBox":
        """From the ``{"topLeft": [x, y, z], "width", "height", "depth"}`` dict of a properties file."""
        if not isinstance(bbox, dict):
            raise TypeError(f"expected a dict with topLeft/width/height/depth, got {bbox!r}")
        missing = [k for k in ("topLeft", "width", "height", "depth") if k not in bbox]
        if missing:
            raise ValueError(f"bounding box dict lacks {missing}: {bbox!r}")
        return cls(bbox["topLeft"], (bbox["width"], bbox["height"], bbox["depth"]))

    def as_wkw(self) -> dict[str, Any]:
        """The dict form of a properties file."""
        return {
            "topLeft": self._topleft.to_list(),
            "width": self._size[0],
            "height": self._size[1],
            "depth": self._size[2],
        }

    @classmethod
    def from_tuple6(cls, tuple6: Iterable[int]) -> "BoundingBox":
        """From ``(x, y, z, width, height, depth)``."""
        values = list(tuple6)
        if len(values) != 6:
            raise ShapeError(f"from_tuple6 needs 6 values, got {tuple6!r}")
        return cls(values[:3], values[3:])

    def as_tuple6(self) -> tuple[int, int, int, int, int, int]:
        return (*self._topleft.to_tuple(), *self._size.to_tuple())  # type: ignore[return-value]

    @classmethod
    def from_tuple2(cls, tuple2: tuple[Vec3IntLike, Vec3IntLike]) -> "BoundingBox":
        """From ``(topleft, size)``."""
        return cls(tuple2[0], tuple2[1])

    def as_tuple2(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        return (self._topleft.to_tuple(), self._size.to_tuple())

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "BoundingBox":
        """From ``{"topleft": [x, y, z], "size": [w, h, d]}`` (:meth:`as_config`)."""
        if not isinstance(config, dict) or "topleft" not in config or "size" not in config:
            raise ValueError(f"expected a dict with the keys topleft and size, got {config!r}")
        return cls(config["topleft"], config["size"])

    def as_config(self) -> dict[str, list[int]]:
        """``{"topleft": [x, y, z], "size": [w, h, d]}`` (JSON-serialisable)."""
        return {"topleft": self._topleft.to_list(), "size": self._size.to_list()}

    @classmethod
    def from_named_tuple(cls, bb_named_tuple: BoundingBoxNamedTuple) -> "BoundingBox":
        """From a :class:`BoundingBoxNamedTuple` (anything with ``topleft`` and ``size``)."""
        return cls(bb_named_tuple.topleft, bb_named_tuple.size)

    def as_named_tuple(self) -> BoundingBoxNamedTuple:
        """``BoundingBoxNamedTuple(topleft=(x, y, z), size=(w, h, d))``."""
        return BoundingBoxNamedTuple(self._topleft.to_tuple(), self._size.to_tuple())

    @classmethod
    def from_checkpoint_name(cls, checkpoint_name: str) -> "BoundingBox":
        """From the first ``x_y_z_width_height_depth`` inside ``checkpoint_name``.

        ``"model_10_20_30_64_64_64.ckpt"`` gives topleft (10, 20, 30) and size (64, 64, 64).
        """
        if not isinstance(checkpoint_name, str):
            raise TypeError(f"checkpoint_name must be a string, got {checkpoint_name!r}")
        match = _CHECKPOINT_RE.search(checkpoint_name)
        if match is None:
            raise ValueError(
                f"{checkpoint_name!r} contains no bounding box of the form x_y_z_width_height_depth"
            )
        return cls.from_tuple6(int(v) for v in match.group(1).split("_"))

    def as_checkpoint_name(self) -> str:
        """``"x_y_z_width_height_depth"``, read back by :meth:`from_checkpoint_name`."""
        return "_".join(str(v) for v in self.as_tuple6())

    @classmethod
    def from_csv(cls, csv_bbox: str) -> "BoundingBox":
        """From ``"x,y,z,width,height,depth"`` (:meth:`as_csv`)."""
        if not isinstance(csv_bbox, str):
            raise TypeError(f"csv_bbox must be a string, got {csv_bbox!r}")
        try:
            values = [int(v) for v in csv_bbox.split(",")]
        except ValueError:
            raise ValueError(f"expected 6 comma-separated ints x,y,z,width,height,depth, got {csv_bbox!r}") from None
        return cls.from_tuple6(values)

    def as_csv(self) -> str:
        """``"x,y,z,width,height,depth"``."""
        return ",".join(str(v) for v in self.as_tuple6())

    @classmethod
    def from_points(cls, points: Iterable[Vec3IntLike]) -> "BoundingBox":
        """The smallest box containing every point (topleft: the minimum, bottomright: the maximum + 1)."""
        array = np.array([_int3(p, "point") for p in points], dtype=object)
        if len(array) == 0:
            raise ValueError("from_points needs at least one point")
        lo = tuple(int(v) for v in array.min(axis=0))
        hi = tuple(int(v) for v in array.max(axis=0))
        return BoundingBox._trusted(lo, (hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1))  # type: ignore[arg-type]

    @classmethod
    def from_auto(cls, obj: Any) -> "BoundingBox":
        """A box from any of the forms above, or the box itself.

        Accepts a BoundingBox, a :class:`BoundingBoxNamedTuple`, a config dict
        (``topleft``/``size``) or properties dict (``topLeft``/``width``/...),
        a JSON string of either dict, a CSV string, a checkpoint name, a
        ``(topleft, size)`` pair or six ints.
        """
        if isinstance(obj, BoundingBox):
            return obj
        if isinstance(obj, BoundingBoxNamedTuple):
            return cls.from_named_tuple(obj)
        if isinstance(obj, str):
            text = obj.strip()
            if text.startswith("{"):
                return cls.from_auto(json.loads(text))
            if "," in text:
                return cls.from_csv(text)
            return cls.from_checkpoint_name(text)
        if isinstance(obj, dict):
            return cls.from_config(obj) if "topleft" in obj else cls.from_wkw(obj)
        if isinstance(obj, (list, tuple, np.ndarray)):
            if len(obj) == 2:
                return cls.from_tuple2(obj)  # type: ignore[arg-type]
            if len(obj) == 6:
                return cls.from_tuple6(obj)
        raise TypeError(
            f"cannot make a BoundingBox from {obj!r}: expected a BoundingBox, a dict, a string, "
            "a (topleft, size) pair or 6 ints"
        )

    # -- properties -------------------------------------------------------------

    @property
    def topleft(self) -> Vec3Int:
        return self._topleft

    @property
    def size(self) -> Vec3Int:
        return self._size

    @property
    def bottomright(self) -> Vec3Int:
        t, s = self._topleft, self._size
        return Vec3Int._trusted(t[0] + s[0], t[1] + s[1], t[2] + s[2])

    def with_topleft(self, topleft: Vec3IntLike) -> "BoundingBox":
        """The box moved to ``topleft``, same size."""
        return BoundingBox(topleft, self._size)

    def with_size(self, size: Vec3IntLike) -> "BoundingBox":
        """The box with ``size``, same topleft."""
        return BoundingBox(self._topleft, size)

    def with_bottomright(self, bottomright: Vec3IntLike) -> "BoundingBox":
        """The box ending at ``bottomright`` (exclusive), same topleft."""
        br = _int3(bottomright, "bottomright")
        t = self._topleft
        return BoundingBox(t, (br[0] - t[0], br[1] - t[1], br[2] - t[2]))

    def copy(self) -> "BoundingBox":
        """An equal box (boxes are immutable, so this is only for code written for 0.8.13)."""
        return BoundingBox._trusted(self._topleft, self._size)

    def is_empty(self) -> bool:
        """True when the box holds no voxel (a size of 0 on some axis)."""
        s = self._size
        return s[0] <= 0 or s[1] <= 0 or s[2] <= 0

    def volume(self) -> int:
        return self._size[0] * self._size[1] * self._size[2]

    # -- predicates -------------------------------------------------------------

    def contains(self, coord: Vec3IntLike) -> bool:
        """True when the voxel ``coord`` lies inside the box."""
        c = _int3(coord, "coord")
        t, b = self._topleft, self.bottomright
        return all(t[i] <= c[i] < b[i] for i in range(3))

    def contains_bbox(self, inner: "BoundingBox") -> bool:
        """True when ``inner`` lies completely inside this box (empty boxes: their corner must)."""
        if not isinstance(inner, BoundingBox):
            raise TypeError(f"contains_bbox needs a BoundingBox, got {inner!r}")
        t, b = self._topleft, self.bottomright
        it, ib = inner._topleft, inner.bottomright
        return all(t[i] <= it[i] and ib[i] <= b[i] for i in range(3))

    # -- derived boxes ----------------------------------------------------------

    def intersected_with(self, other: "BoundingBox", dont_assert: bool = False) -> "BoundingBox":
        """The common part of both boxes.

        Raises a ValueError (that is also an AssertionError, as in
        webknossos) when it is empty, unless ``dont_assert`` is set; then an
        empty box is returned.
        """
        if not isinstance(other, BoundingBox):
            raise TypeError(f"intersected_with needs a BoundingBox, got {other!r}")
        t1, b1, t2, b2 = self._topleft, self.bottomright, other._topleft, other.bottomright
        tl = tuple(max(t1[i], t2[i]) for i in range(3))
        size = tuple(max(0, min(b1[i], b2[i]) - tl[i]) for i in range(3))
        result = BoundingBox._trusted(tl, size)  # type: ignore[arg-type]
        if not dont_assert and result.is_empty():
            raise ShapeError(f"No intersection between {self} and {other}")
        return result

    def extended_by(self, other: "BoundingBox") -> "BoundingBox":
        """The smallest box containing both; an empty box does not extend the other."""
        if not isinstance(other, BoundingBox):
            raise TypeError(f"extended_by needs a BoundingBox, got {other!r}")
        if self.is_empty():
            return other
        if other.is_empty():
            return self
        t1, b1, t2, b2 = self._topleft, self.bottomright, other._topleft, other.bottomright
        tl = tuple(min(t1[i], t2[i]) for i in range(3))
        br = tuple(max(b1[i], b2[i]) for i in range(3))
        return BoundingBox._trusted(tl, tuple(br[i] - tl[i] for i in range(3)))  # type: ignore[arg-type]

    def padded_with_margins(
        self, margins_left: Vec3IntLike, margins_right: Vec3IntLike | None = None
    ) -> "BoundingBox":
        """Grow the box by ``margins_left`` before and ``margins_right`` (default: the same) after."""
        left = _int3(margins_left, "margins_left")
        right = left if margins_right is None else _int3(margins_right, "margins_right")
        return BoundingBox(self._topleft - left, self._size + left + right)

    def offset(self, vector: Vec3IntLike) -> "BoundingBox":
        """The same box moved by ``vector``."""
        v = _int3(vector, "vector")
        return BoundingBox._trusted(self._topleft + v, self._size)

    def in_mag(self, mag: MagLike) -> "BoundingBox":
        """This mag-1 box in the coordinates of ``mag``; both corners must be divisible by it."""
        m = Mag(mag).to_vec3_int()
        t, b = self._topleft, self.bottomright
        if any(t[i] % m[i] or b[i] % m[i] for i in range(3)):
            raise ShapeError(
                f"{self} is not aligned with {Mag(mag)!r}: "
                "use align_with_mag() first"
            )
        return BoundingBox._trusted(t // m, self._size // m)

    def from_mag_to_mag1(self, from_mag: MagLike) -> "BoundingBox":
        """Inverse of :meth:`in_mag`."""
        m = Mag(from_mag).to_vec3_int()
        return BoundingBox._trusted(self._topleft * m, self._size * m)

    def align_with_mag(self, mag: MagLike, ceil: bool = False) -> "BoundingBox":
        """Round both corners to multiples of ``mag``.

        ``ceil=True`` grows the box where needed; ``ceil=False`` shrinks it
        (to size 0 on an axis where no whole mag cell fits).
        """
        offset, size = _core.align_box(self._topleft, self._size, Mag(mag).to_tuple(), ceil)
        return BoundingBox._trusted(offset, size)

    def as_slices(self) -> tuple[slice, slice, slice]:
        """Slices selecting this box from an array that starts at the origin."""
        t, b = self._topleft, self.bottomright
        return (slice(t[0], b[0]), slice(t[1], b[1]), slice(t[2], b[2]))

    def slice_array(self, array: np.ndarray) -> np.ndarray:
        """``array[topleft:bottomright]`` on the first three axes (a view, not a copy).

        The array's origin is (0, 0, 0); a box with negative coordinates raises.
        """
        t, b = self._topleft, self.bottomright
        if t[0] < 0 or t[1] < 0 or t[2] < 0:
            raise ValueError(f"{self} starts at negative coordinates; it cannot slice an array")
        if np.ndim(array) < 3:
            raise ShapeError(f"slice_array needs an array with at least 3 axes, got shape {np.shape(array)}")
        return array[t[0] : b[0], t[1] : b[1], t[2] : b[2]]

    def chunk(
        self,
        chunk_size: Vec3IntLike,
        chunk_border_alignments: Vec3IntLike | None = None,
    ) -> Iterator["BoundingBox"]:
        """Lazily split the box into chunks of ``chunk_size``, clipped to the box.

        With ``chunk_border_alignments``, every border between two chunks is
        divisible by it. Order: x outermost, z innermost.
        """
        grid = self._chunk_grid(chunk_size, chunk_border_alignments)
        trusted = BoundingBox._trusted
        return (trusted(off, size) for off, size in grid.boxes())

    def chunk_count(
        self,
        chunk_size: Vec3IntLike,
        chunk_border_alignments: Vec3IntLike | None = None,
    ) -> int:
        """Number of chunks :meth:`chunk` yields, in O(1)."""
        return len(self._chunk_grid(chunk_size, chunk_border_alignments))

    def _chunk_grid(self, chunk_size: Vec3IntLike, chunk_border_alignments: Vec3IntLike | None) -> Any:
        try:
            return _core.chunk_grid(self._topleft, self._size, chunk_size, chunk_border_alignments)
        except ValueError as exc:
            # webknossos asserts on these; ChunkingError is a ValueError and an AssertionError
            raise ChunkingError(str(exc)) from None

    # -- dunder -----------------------------------------------------------------

    def __eq__(self, other: Any) -> bool:
        if not isinstance(other, BoundingBox):
            return NotImplemented
        return self._topleft == other._topleft and self._size == other._size

    def __hash__(self) -> int:
        return hash((self._topleft, self._size))

    def __repr__(self) -> str:
        return f"BoundingBox(topleft={self._topleft.to_tuple()}, size={self._size.to_tuple()})"

    __str__ = __repr__
