"""Tests of the geometry value types: Vec3Int, Mag and BoundingBox."""

from __future__ import annotations

import copy
import operator
import pickle
import types
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wkview import BoundingBox, ChunkingError, Mag, ShapeError, Vec3Int

from . import reference as ref
from .conftest import examples

SETTINGS = settings(max_examples=examples(200), deadline=None)

ORIGINS = [0, -(2**31), 2**31, 2**40, -(2**40)]
coord = st.builds(operator.add, st.sampled_from(ORIGINS), st.integers(-40, 40))
small = st.integers(-12, 12)
extent = st.integers(0, 16)
boxes = st.builds(BoundingBox, st.tuples(coord, coord, coord), st.tuples(extent, extent, extent))
# boxes near one another, so intersections are often non-empty
near_boxes = st.builds(BoundingBox, st.tuples(small, small, small), st.tuples(extent, extent, extent))
power = st.sampled_from([1, 2, 4, 8, 16])
mags = st.builds(Mag, st.tuples(power, power, power))


def assert_error_names(info: pytest.ExceptionInfo, value: object) -> None:
    assert repr(value) in str(info.value), f"{value!r} missing in {info.value}"


# -- Vec3Int ---------------------------------------------------------------------


class TestVec3Int:
    def test_construction(self):
        assert Vec3Int(1, 2, 3) == Vec3Int((1, 2, 3)) == Vec3Int([1, 2, 3]) == (1, 2, 3)
        assert Vec3Int(np.array([1, 2, 3])) == (1, 2, 3)
        v = Vec3Int(1, 2, 3)
        assert (v.x, v.y, v.z) == (1, 2, 3)
        assert v.to_tuple() == (1, 2, 3) and v.to_list() == [1, 2, 3]
        assert v.to_np().dtype == np.int64 and v.prod() == 6
        assert repr(v) == "Vec3Int(1,2,3)"

    @pytest.mark.parametrize("bad", [(1, 2), (1.0, 2, 3), "abc", (True, 1, 1), None])
    def test_bad_input(self, bad):
        with pytest.raises((TypeError, ValueError)) as info:
            Vec3Int(bad)
        assert_error_names(info, bad)

    @SETTINGS
    @given(st.tuples(coord, small, small), st.tuples(small, small, small), st.integers(1, 9))
    def test_element_wise_arithmetic(self, a, b, k):
        v = Vec3Int(a)
        for op in (operator.add, operator.sub, operator.mul, operator.floordiv, operator.mod):
            expected = tuple(op(a[i], k) for i in range(3))
            assert op(v, k) == expected and isinstance(op(v, k), Vec3Int)
            if op not in (operator.floordiv, operator.mod):
                assert op(k, v) == tuple(op(k, a[i]) for i in range(3))
        for op in (operator.add, operator.sub, operator.mul):
            expected = tuple(op(a[i], b[i]) for i in range(3))
            for other in (b, list(b), Vec3Int(b)):
                assert op(v, other) == expected
                assert isinstance(op(v, other), Vec3Int)
            reflected = tuple(op(b[i], a[i]) for i in range(3))
            # tuple + Vec3Int must not concatenate
            assert op(b, v) == reflected and isinstance(op(b, v), Vec3Int)
            assert op(list(b), v) == reflected
        assert -v == tuple(-x for x in a)

    def test_reflected_examples(self):
        assert (1, 2, 3) + Vec3Int(10, 20, 30) == Vec3Int(11, 22, 33)
        assert [1, 2, 3] - Vec3Int(1, 1, 1) == Vec3Int(0, 1, 2)
        assert (2, 3, 4) * Vec3Int(1, 2, 3) == Vec3Int(2, 6, 12)
        assert 3 * Vec3Int(1, 2, 3) == Vec3Int(3, 6, 9)
        assert Vec3Int(1, 2, 3) * 3 == Vec3Int(3, 6, 9)  # not tuple repetition

    def test_numpy_operands(self):
        result = Vec3Int(1, 2, 3) + np.array([1, 1, 1])
        assert isinstance(result, np.ndarray) and result.tolist() == [2, 3, 4]
        assert (np.array([1, 1, 1]) + Vec3Int(1, 2, 3)).tolist() == [2, 3, 4]

    @pytest.mark.parametrize("other", [(1, 2), (1, 2, 3, 4), [1, 2], (1.5, 0, 0)])
    @pytest.mark.parametrize("op", [operator.add, operator.sub, operator.mul])
    def test_mismatched_operands_raise_instead_of_concatenating(self, op, other):
        v = Vec3Int(1, 2, 3)
        for call in (lambda: op(v, other), lambda: op(other, v)):
            with pytest.raises((TypeError, ValueError)):
                call()

    def test_hash_and_pickle(self):
        v = Vec3Int(1, 2, 3)
        assert hash(v) == hash((1, 2, 3))
        assert pickle.loads(pickle.dumps(v)) == v
        assert type(pickle.loads(pickle.dumps(v))) is Vec3Int


# -- Mag -------------------------------------------------------------------------


class TestMag:
    @pytest.mark.parametrize(
        "value, expected",
        [
            (2, (2, 2, 2)),
            ("2", (2, 2, 2)),
            ("2-2-1", (2, 2, 1)),
            ([2, 2, 1], (2, 2, 1)),
            ((2, 2, 1), (2, 2, 1)),
            (np.array([4, 2, 1]), (4, 2, 1)),
            (np.int64(8), (8, 8, 8)),
            (Vec3Int(1, 2, 4), (1, 2, 4)),
            (Mag("4-4-2"), (4, 4, 2)),
        ],
    )
    def test_construction(self, value, expected):
        mag = Mag(value)
        assert mag.to_tuple() == expected
        assert mag.to_list() == list(expected)
        assert (mag.x, mag.y, mag.z) == expected
        assert mag.to_np().tolist() == list(expected)
        assert mag.to_vec3_int() == Vec3Int(expected)
        assert tuple(mag) == expected
        assert mag.max_dim == max(expected)
        assert 2**mag.max_dim_log2 == max(expected)

    def test_layer_names(self):
        assert Mag(2).to_layer_name() == "2"
        assert Mag("2-2-2").to_layer_name() == "2"
        assert Mag("2-2-1").to_layer_name() == "2-2-1"
        assert Mag(2).to_long_layer_name() == "2-2-2"
        assert Mag([4, 2, 1]).to_long_layer_name() == "4-2-1"
        assert str(Mag(4)) == "4"
        assert Mag(Mag("2-2-1").to_layer_name()) == Mag("2-2-1")

    def test_equality_and_hashing(self):
        assert Mag(2) == Mag("2") == Mag("2-2-2") == Mag([2, 2, 2])
        assert Mag(2) != Mag("2-2-1")
        assert len({Mag(2), Mag("2-2-2"), Mag((2, 2, 2)), Mag("2-2-1")}) == 2
        assert {Mag(2): "x"}[Mag("2-2-2")] == "x"
        assert Mag(2) != "not a mag"
        assert Mag(2) == 2 and Mag(2) == "2"

    def test_ordering(self):
        mags = [Mag(4), Mag(1), Mag("2-2-1"), Mag(2), Mag("4-4-2")]
        assert sorted(mags) == [Mag(1), Mag("2-2-1"), Mag(2), Mag("4-4-2"), Mag(4)]
        assert Mag(1) < Mag(2) <= Mag(2) < Mag(4)
        assert Mag(8) > Mag(4) >= Mag("4-4-1")
        assert max(mags) == Mag(4) and min(mags) == Mag(1)
        assert Mag(2) < 4 and Mag(2) < "4"
        with pytest.raises(TypeError):
            _ = Mag(2) < "x"

    @SETTINGS
    @given(mags, mags)
    def test_ordering_is_consistent(self, a, b):
        assert (a < b) + (a == b) + (a > b) == 1
        assert (a <= b) == (a < b or a == b)
        assert (a >= b) == (a > b or a == b)
        if a.max_dim < b.max_dim:
            assert a < b
        if a == b:
            assert hash(a) == hash(b)

    def test_arithmetic(self):
        assert Mag(2) * 2 == Mag(4)
        assert Mag("4-4-2") // 2 == Mag("2-2-1")

    def test_immutable_and_pickle(self):
        mag = Mag("2-2-1")
        with pytest.raises(AttributeError):
            mag._mag = Vec3Int(1, 1, 1)  # type: ignore[misc]
        with pytest.raises(AttributeError):
            mag.x = 4  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(mag)) == mag
        assert copy.deepcopy(mag) == mag
        assert repr(mag) == "Mag(2-2-1)"

    @pytest.mark.parametrize(
        "bad, expected",
        [
            (3, ValueError),
            (0, ValueError),
            (-2, ValueError),
            ("x", ValueError),
            ("2-2", ValueError),
            ("3-2-1", ValueError),
            (2.0, TypeError),
            ([1, 2], ValueError),
            ([1, 2, 4, 8], ValueError),
            ([2, 2, 2.0], TypeError),
            (True, TypeError),
            (None, TypeError),
        ],
    )
    def test_bad_input(self, bad, expected):
        with pytest.raises(expected) as info:
            Mag(bad)
        assert_error_names(info, bad)


# -- BoundingBox -----------------------------------------------------------------


class TestBoundingBoxBasics:
    def test_properties(self):
        box = BoundingBox((1, -2, 3), (4, 5, 6))
        assert box.topleft == Vec3Int(1, -2, 3) and isinstance(box.topleft, Vec3Int)
        assert box.size == Vec3Int(4, 5, 6) and isinstance(box.size, Vec3Int)
        assert box.bottomright == Vec3Int(5, 3, 9) and isinstance(box.bottomright, Vec3Int)
        assert box.volume() == 120
        assert not box.is_empty()
        assert repr(box) == "BoundingBox(topleft=(1, -2, 3), size=(4, 5, 6))"

    def test_accepted_inputs(self):
        expected = BoundingBox((1, 2, 3), (4, 5, 6))
        assert BoundingBox([1, 2, 3], [4, 5, 6]) == expected
        assert BoundingBox(np.array([1, 2, 3]), np.array([4, 5, 6], dtype=np.uint16)) == expected
        assert BoundingBox(Vec3Int(1, 2, 3), Vec3Int(4, 5, 6)) == expected
        big = BoundingBox((2**40, -(2**40), 2**31), (1, 2, 3))
        assert big.bottomright == (2**40 + 1, -(2**40) + 2, 2**31 + 3)

    @pytest.mark.parametrize("size", [(0, 1, 1), (1, 0, 1), (1, 1, 0), (0, 0, 0)])
    def test_empty(self, size):
        box = BoundingBox((5, 5, 5), size)
        assert box.is_empty() and box.volume() == 0
        assert not box.contains((5, 5, 5))
        assert list(box.chunk((2, 2, 2))) == []

    @SETTINGS
    @given(boxes)
    def test_wkw_and_tuple_round_trips(self, box):
        wkw = box.as_wkw()
        assert wkw == {
            "topLeft": list(box.topleft),
            "width": box.size[0],
            "height": box.size[1],
            "depth": box.size[2],
        }
        assert BoundingBox.from_wkw(wkw) == box
        assert box.as_tuple6() == (*box.topleft, *box.size)
        assert BoundingBox.from_tuple6(box.as_tuple6()) == box
        assert BoundingBox.from_tuple2(box.as_tuple2()) == box

    def test_from_wkw_bad_input(self):
        with pytest.raises(ValueError, match="depth"):
            BoundingBox.from_wkw({"topLeft": [0, 0, 0], "width": 1, "height": 1})
        with pytest.raises(TypeError, match=r"\[0, 0, 0\]"):
            BoundingBox.from_wkw([0, 0, 0])  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="1.5"):
            BoundingBox.from_wkw({"topLeft": [0, 0, 0], "width": 1.5, "height": 1, "depth": 1})
        with pytest.raises(ValueError, match=r"\(1, 2, 3, 4, 5\)"):
            BoundingBox.from_tuple6((1, 2, 3, 4, 5))

    @pytest.mark.parametrize(
        "topleft, size, bad, expected",
        [
            ((0, 0, 0), (-1, 1, 1), (-1, 1, 1), ValueError),
            ((0, 0, 0), (1, 1, -5), (1, 1, -5), ValueError),
            ((0, 0), (1, 1, 1), (0, 0), ValueError),
            ((0, 0, 0), (1, 1, 1, 1), (1, 1, 1, 1), ValueError),
            ((0.5, 0, 0), (1, 1, 1), (0.5, 0, 0), TypeError),
            ((0, 0, 0), (1, 2.0, 1), (1, 2.0, 1), TypeError),
            ("abc", (1, 1, 1), "abc", TypeError),
            ((0, 0, 0), (1, "1", 1), (1, "1", 1), TypeError),
            ((True, 0, 0), (1, 1, 1), (True, 0, 0), TypeError),
            ((0, 0, 0), 5, 5, TypeError),
            (None, (1, 1, 1), None, TypeError),
        ],
    )
    def test_bad_input(self, topleft, size, bad, expected):
        with pytest.raises(expected) as info:
            BoundingBox(topleft, size)
        assert_error_names(info, bad)

    def test_immutable(self):
        box = BoundingBox((0, 0, 0), (1, 1, 1))
        for name in ("topleft", "size", "_topleft", "_size", "anything"):
            with pytest.raises(AttributeError):
                setattr(box, name, (2, 2, 2))
        assert box == BoundingBox((0, 0, 0), (1, 1, 1))

    def test_hashable_and_equality(self):
        a = BoundingBox((0, 1, 2), (3, 4, 5))
        b = BoundingBox([0, 1, 2], np.array([3, 4, 5]))
        assert a == b and hash(a) == hash(b)
        assert {a: 1}[b] == 1
        assert len({a, b, BoundingBox((0, 1, 2), (3, 4, 6))}) == 2
        assert a != BoundingBox((0, 1, 3), (3, 4, 5))
        assert (a == 3) is False and (a != 3) is True
        assert a.__eq__(3) is NotImplemented
        assert a != ((0, 1, 2), (3, 4, 5))

    @SETTINGS
    @given(boxes)
    def test_pickle_round_trip(self, box):
        restored = pickle.loads(pickle.dumps(box))
        assert restored == box and hash(restored) == hash(box)
        assert type(restored) is BoundingBox
        assert copy.copy(box) == box and copy.deepcopy(box) == box


class TestBoundingBoxPredicates:
    @SETTINGS
    @given(near_boxes, st.tuples(small, small, small))
    def test_contains(self, box, point):
        expected = all(box.topleft[i] <= point[i] < box.topleft[i] + box.size[i] for i in range(3))
        assert box.contains(point) is expected
        assert box.contains(list(point)) is expected
        assert box.contains(np.array(point)) is expected

    @SETTINGS
    @given(near_boxes, near_boxes)
    def test_contains_bbox(self, outer, inner):
        if not inner.is_empty():
            # every voxel of inner in outer <=> both extreme voxels in outer
            last = tuple(inner.bottomright[i] - 1 for i in range(3))
            expected = outer.contains(inner.topleft) and outer.contains(last)
            assert outer.contains_bbox(inner) is expected
        assert outer.contains_bbox(outer)
        if outer.contains_bbox(inner) and not inner.is_empty():
            assert outer.intersected_with(inner) == inner

    def test_contains_bad_input(self):
        box = BoundingBox((0, 0, 0), (2, 2, 2))
        with pytest.raises(ValueError, match=r"\(1, 1\)"):
            box.contains((1, 1))
        with pytest.raises(TypeError, match="not a box"):
            box.contains_bbox("not a box")  # type: ignore[arg-type]


class TestBoundingBoxDerived:
    @SETTINGS
    @given(near_boxes, near_boxes)
    def test_intersected_with(self, a, b):
        lo = tuple(max(a.topleft[i], b.topleft[i]) for i in range(3))
        hi = tuple(min(a.bottomright[i], b.bottomright[i]) for i in range(3))
        overlap = all(lo[i] < hi[i] for i in range(3))
        loose = a.intersected_with(b, dont_assert=True)
        assert loose == b.intersected_with(a, dont_assert=True)
        if overlap:
            expected = BoundingBox(lo, tuple(hi[i] - lo[i] for i in range(3)))
            assert a.intersected_with(b) == expected == loose
            assert a.contains_bbox(loose) and b.contains_bbox(loose)
        else:
            assert loose.is_empty()
            with pytest.raises(ValueError) as info:
                a.intersected_with(b)
            assert isinstance(info.value, AssertionError)

    def test_intersected_with_examples(self):
        a = BoundingBox((0, 0, 0), (4, 4, 4))
        assert a.intersected_with(BoundingBox((2, -1, 3), (4, 2, 9))) == BoundingBox((2, 0, 3), (2, 1, 1))
        far = BoundingBox((10, 10, 10), (1, 1, 1))
        with pytest.raises(AssertionError):
            a.intersected_with(far)
        assert a.intersected_with(far, dont_assert=True).is_empty()
        with pytest.raises(TypeError):
            a.intersected_with((0, 0, 0))  # type: ignore[arg-type]

    @SETTINGS
    @given(near_boxes, near_boxes)
    def test_extended_by(self, a, b):
        result = a.extended_by(b)
        if a.is_empty():
            assert result == b
        elif b.is_empty():
            assert result == a
        else:
            lo = tuple(min(a.topleft[i], b.topleft[i]) for i in range(3))
            hi = tuple(max(a.bottomright[i], b.bottomright[i]) for i in range(3))
            assert result == BoundingBox(lo, tuple(hi[i] - lo[i] for i in range(3)))
            assert result.contains_bbox(a) and result.contains_bbox(b)
            assert result == b.extended_by(a)

    @SETTINGS
    @given(boxes, st.tuples(*[st.integers(0, 5)] * 3), st.tuples(*[st.integers(0, 5)] * 3))
    def test_padded_with_margins(self, box, left, right):
        padded = box.padded_with_margins(left, right)
        assert padded.topleft == box.topleft - left
        assert padded.size == box.size + left + right
        assert padded.bottomright == box.bottomright + right
        assert box.padded_with_margins(left) == box.padded_with_margins(left, left)
        assert padded.padded_with_margins(tuple(-v for v in left), tuple(-v for v in right)) == box

    def test_padded_with_negative_margins_beyond_size(self):
        with pytest.raises(ValueError):
            BoundingBox((0, 0, 0), (2, 2, 2)).padded_with_margins((-2, 0, 0), (-1, 0, 0))

    @SETTINGS
    @given(boxes, st.tuples(coord, small, small))
    def test_offset(self, box, vector):
        moved = box.offset(vector)
        assert moved.topleft == box.topleft + vector and moved.size == box.size
        assert moved.offset(tuple(-v for v in vector)) == box

    @SETTINGS
    @given(boxes, mags, st.booleans())
    def test_align_with_mag(self, box, mag, ceil):
        aligned = box.align_with_mag(mag, ceil=ceil)
        expected = ref.align_box(box.topleft, box.size, mag.to_tuple(), outward=ceil)
        assert aligned.as_tuple2() == expected
        assert box.align_with_mag(mag) == box.align_with_mag(mag, ceil=False)
        if ceil:
            assert aligned.contains_bbox(box)
        elif not aligned.is_empty():
            assert box.contains_bbox(aligned)
        # aligned boxes convert to the mag and back
        assert aligned.in_mag(mag).from_mag_to_mag1(mag) == aligned

    def test_align_with_mag_examples(self):
        box = BoundingBox((1, 2, 3), (4, 5, 6))
        assert box.align_with_mag(Mag(2)) == BoundingBox((2, 2, 4), (2, 4, 4))
        assert box.align_with_mag(Mag(2), ceil=True) == BoundingBox((0, 2, 2), (6, 6, 8))
        assert box.align_with_mag("4-4-1", ceil=True) == BoundingBox((0, 0, 3), (8, 8, 6))
        # nothing whole fits: size 0 on that axis
        assert BoundingBox((1, 0, 0), (2, 4, 4)).align_with_mag(4) == BoundingBox((4, 0, 0), (0, 4, 4))

    @SETTINGS
    @given(boxes, mags)
    def test_in_mag(self, box, mag):
        m = mag.to_tuple()
        aligned = all(box.topleft[i] % m[i] == 0 and box.bottomright[i] % m[i] == 0 for i in range(3))
        if aligned:
            scaled = box.in_mag(mag)
            assert scaled.topleft == tuple(box.topleft[i] // m[i] for i in range(3))
            assert scaled.size == tuple(box.size[i] // m[i] for i in range(3))
        else:
            with pytest.raises(ValueError) as info:
                box.in_mag(mag)
            assert isinstance(info.value, AssertionError)
            assert str(box) in str(info.value)

    def test_in_mag_examples(self):
        assert BoundingBox((4, 8, 2), (8, 8, 2)).in_mag(Mag("4-4-2")) == BoundingBox((1, 2, 1), (2, 2, 1))
        with pytest.raises(AssertionError):
            BoundingBox((1, 0, 0), (4, 4, 4)).in_mag(2)
        with pytest.raises(ValueError):
            BoundingBox((0, 0, 0), (3, 4, 4)).in_mag(2)

    @SETTINGS
    @given(st.tuples(*[st.integers(0, 6)] * 3), st.tuples(*[st.integers(0, 5)] * 3))
    def test_as_slices(self, topleft, size):
        box = BoundingBox(topleft, size)
        array = np.arange(12**3).reshape(12, 12, 12)
        expected = array[
            topleft[0] : topleft[0] + size[0], topleft[1] : topleft[1] + size[1], topleft[2] : topleft[2] + size[2]
        ]
        np.testing.assert_array_equal(array[box.as_slices()], expected)
        assert array[box.as_slices()].shape == tuple(size)


chunk_step = st.integers(1, 8)
alignment_and_chunk = st.tuples(*[st.integers(1, 4)] * 3).flatmap(
    lambda a: st.tuples(
        st.tuples(*[st.integers(1, 3).map(lambda f, v=v: f * v) for v in a]), st.just(a)
    )
)


class TestBoundingBoxChunk:
    def test_is_lazy(self):
        box = BoundingBox((0, 0, 0), (2**40, 2**40, 2**40))
        chunks = box.chunk((32, 32, 32))
        assert isinstance(chunks, Iterator)
        assert not isinstance(chunks, (list, tuple))
        assert isinstance(chunks, types.GeneratorType)
        assert next(chunks) == BoundingBox((0, 0, 0), (32, 32, 32))
        assert next(chunks) == BoundingBox((0, 0, 32), (32, 32, 32))
        assert box.chunk_count((2**20, 2**20, 2**20)) == 2**60

    @SETTINGS
    @given(boxes, st.tuples(chunk_step, chunk_step, chunk_step))
    def test_matches_reference(self, box, chunk_size):
        chunks = list(box.chunk(chunk_size))
        expected = [BoundingBox(o, s) for o, s in ref.chunk_grid(box.topleft, box.size, chunk_size)]
        assert chunks == expected
        assert all(type(c) is BoundingBox for c in chunks)
        assert box.chunk_count(chunk_size) == len(chunks)
        assert sum(c.volume() for c in chunks) == box.volume()
        assert all(box.contains_bbox(c) for c in chunks)

    @SETTINGS
    @given(boxes, alignment_and_chunk)
    def test_aligned_matches_reference(self, box, chunking):
        chunk_size, alignment = chunking
        chunks = list(box.chunk(chunk_size, chunk_border_alignments=alignment))
        expected = [BoundingBox(o, s) for o, s in ref.chunk_grid(box.topleft, box.size, chunk_size, alignment)]
        assert chunks == expected
        assert box.chunk_count(chunk_size, alignment) == len(chunks)
        assert sum(c.volume() for c in chunks) == box.volume()
        for c in chunks:
            for i in range(3):
                if c.topleft[i] != box.topleft[i]:
                    assert c.topleft[i] % alignment[i] == 0

    def test_examples(self):
        box = BoundingBox((10, 0, 0), (20, 8, 4))
        chunks = list(box.chunk((8, 8, 8), (4, 4, 4)))
        assert chunks == [
            BoundingBox((10, 0, 0), (6, 8, 4)),
            BoundingBox((16, 0, 0), (8, 8, 4)),
            BoundingBox((24, 0, 0), (6, 8, 4)),
        ]
        assert list(BoundingBox((0, 0, 0), (4, 4, 4)).chunk((2, 2, 2)))[:3] == [
            BoundingBox((0, 0, 0), (2, 2, 2)),
            BoundingBox((0, 0, 2), (2, 2, 2)),
            BoundingBox((0, 2, 0), (2, 2, 2)),
        ]
        assert list(BoundingBox((0, 0, 0), (4, 4, 4)).chunk(Vec3Int(8, 8, 8))) == [BoundingBox((0, 0, 0), (4, 4, 4))]

    def test_chunk_size_not_multiple_of_alignment(self):
        box = BoundingBox((0, 0, 0), (16, 16, 16))
        with pytest.raises(ChunkingError) as info:
            list(box.chunk((6, 8, 8), (4, 4, 4)))
        assert isinstance(info.value, ValueError) and isinstance(info.value, AssertionError)
        assert "(6, 8, 8)" in str(info.value)

    @pytest.mark.parametrize(
        "chunk_size, expected",
        [((0, 4, 4), ValueError), ((4, -4, 4), ValueError), ((4, 4), ValueError), ((4.0, 4, 4), TypeError), ("abc", TypeError)],
    )
    def test_bad_chunk_size(self, chunk_size, expected):
        box = BoundingBox((0, 0, 0), (16, 16, 16))
        with pytest.raises(expected) as info:
            list(box.chunk(chunk_size))
        assert_error_names(info, chunk_size)
        with pytest.raises(expected):
            box.chunk_count(chunk_size)


def test_shape_error_is_value_and_assertion_error():
    assert issubclass(ShapeError, ValueError) and issubclass(ShapeError, AssertionError)
