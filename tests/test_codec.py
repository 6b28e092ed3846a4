"""wkview's own LZ4 / LZ4HC codec (``wkview.codec``) against libwkw and a NumPy oracle."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import lz4.block
import numpy as np
import pytest
import wkw
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wkview import CorruptFileError, _codec, _core, codec

from .conftest import examples

LZ4, LZ4HC = wkw.Header.BLOCK_TYPE_LZ4, wkw.Header.BLOCK_TYPE_LZ4HC
DTYPES = [np.uint8, np.uint16, np.float32, np.uint64, np.int8]

SETTINGS = settings(
    max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


def random_data(rng: np.random.Generator, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """Random voxels, half of them from a small range so blocks do compress."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = (rng.random(shape) * 1000 + 1).astype(dt)
    else:
        info = np.iinfo(dt)
        data = rng.integers(max(info.min, -(2**31)), min(info.max, 2**31 - 1), size=shape, endpoint=True).astype(dt)
    smooth = rng.random(shape) < 0.5
    data[smooth] = dt.type(7)
    data[data == 0] = 1
    return data


def make_mag(root: Path, dtype: type, channels: int, block_len: int, file_len: int, block_type: int) -> wkw.Header:
    header = wkw.Header(dtype, num_channels=channels, block_len=block_len, file_len=file_len, block_type=block_type)
    wkw.Dataset.create(str(root), header).close()
    return header


def file_path(root: Path, x: int = 0, y: int = 0, z: int = 0) -> str:
    return str(root / f"z{z}" / f"y{y}" / f"x{x}.wkw")


def libwkw_read(root: Path, offset: tuple[int, int, int], size: tuple[int, int, int]) -> np.ndarray:
    with wkw.Dataset.open(str(root)) as ds:
        return ds.read(offset, size)


def libwkw_write(root: Path, offset: tuple[int, int, int], data: np.ndarray) -> None:
    with wkw.Dataset.open(str(root)) as ds:
        ds.write(offset, np.asfortranarray(data))


def layouts(max_edge: int = 64) -> st.SearchStrategy:
    return st.tuples(
        st.sampled_from(DTYPES),
        st.sampled_from([1, 3]),
        st.sampled_from([8, 16, 32]),
        st.sampled_from([1, 2, 4]),
        st.sampled_from([LZ4, LZ4HC]),
    ).filter(lambda t: t[2] * t[3] <= max_edge)


def boxes(edge: int) -> st.SearchStrategy:
    def box(draw_lo: tuple[int, int, int]) -> st.SearchStrategy:
        return st.tuples(*[st.integers(1, edge - lo) for lo in draw_lo]).map(lambda s: (draw_lo, s))

    return st.tuples(*[st.integers(0, edge - 1)] * 3).flatmap(box)


def arrange(data: np.ndarray, order: str) -> np.ndarray:
    """The same values in another memory layout: F, C or a strided view."""
    if order == "F":
        return np.asfortranarray(data)
    if order == "C":
        return np.ascontiguousarray(data)
    big = np.zeros((data.shape[0], *(2 * s + 1 for s in data.shape[1:])), dtype=data.dtype)
    view = big[:, 1::2, 1::2, 1::2]
    view[...] = data
    return view


# -- kernels ----------------------------------------------------------------------------


def test_morton_matches_core() -> None:
    coords = _codec.morton_coords(4096)
    for index in [0, 1, 2, 3, 4, 5, 7, 8, 63, 511, 4095]:
        assert tuple(coords[index]) == tuple(_core.morton_decode(index))
        assert _codec.morton_decode(index) == tuple(coords[index])
        assert _codec.morton_encode(*coords[index]) == index
    assert [tuple(c) for c in coords[:6]] == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1), (1, 0, 1)]


def piece_row(index: int, lo: tuple, at: tuple, size: tuple, B: int) -> np.ndarray:
    return np.array([[index, *lo, *at, *size, int(size == (B, B, B))]], dtype=np.int64)


def block_reference(B: int, channels: int, dtype: type) -> np.ndarray:
    """A decoded block as NumPy sees it: (z, y, x, channel) in C order."""
    return np.zeros((B, B, B, channels), dtype=dtype)


@SETTINGS
@given(
    dtype=st.sampled_from(DTYPES),
    channels=st.sampled_from([1, 2, 3]),
    order=st.sampled_from(["F", "C", "strided"]),
    seed=st.integers(0, 2**16),
    merge=st.booleans(),
)
def test_piece_kernels_match_numpy(dtype: type, channels: int, order: str, seed: int, merge: bool) -> None:
    """encode_pieces / decode_pieces move exactly the piece, for every dtype and layout;
    python-lz4 (another binding) decodes and encodes the blocks independently."""
    rng = np.random.default_rng(seed)
    B = 8
    block_bytes = B**3 * channels * np.dtype(dtype).itemsize
    array = arrange(random_data(rng, (channels, 11, 9, 10), dtype), order)
    lo = tuple(int(v) for v in rng.integers(0, 4, 3))
    at = tuple(int(v) for v in rng.integers(0, 3, 3))
    size = tuple(int(v) for v in rng.integers(1, 6, 3))
    pieces = piece_row(5, lo, at, size, B)
    sel = np.asarray(array)[:, at[0] : at[0] + size[0], at[1] : at[1] + size[1], at[2] : at[2] + size[2]]
    ref = block_reference(B, channels, dtype)
    old = b""
    if merge:  # merged into a stored block instead of zeros
        ref[...] = random_data(rng, ref.shape, dtype)
        old = lz4.block.compress(ref.tobytes(), mode="high_compression", compression=3, store_size=False)
    ref[lo[2] : lo[2] + size[2], lo[1] : lo[1] + size[1], lo[0] : lo[0] + size[0]] = sel.transpose(3, 2, 1, 0)
    out = bytearray(_codec.compress_bound(block_bytes))
    lengths = np.zeros(1, dtype=np.int64)
    old_range = np.array([0], np.int64), np.array([len(old)], np.int64)
    assert _codec.encode_pieces(array, pieces, B, old, *old_range, LZ4HC, 9, out, lengths) == (-1, 0)
    blob = bytes(out[: lengths[0]])
    assert lz4.block.decompress(blob, uncompressed_size=block_bytes) == ref.tobytes()
    # and back: only the piece lands in the array, in its layout
    back = arrange(np.zeros(array.shape, dtype=dtype), order)
    assert _codec.decode_pieces(blob, np.array([0]), np.array([len(blob)]), pieces, back, B) == -1
    expected = np.zeros(array.shape, dtype=dtype)
    expected[:, at[0] : at[0] + size[0], at[1] : at[1] + size[1], at[2] : at[2] + size[2]] = sel
    np.testing.assert_array_equal(back, expected)


def test_lz4_matches_python_lz4() -> None:
    """The system liblz4 gives python-lz4's LZ4HC bytes at every level (level 9: libwkw's)."""
    raw = np.random.default_rng(0).integers(0, 8, 40000, dtype=np.uint8).tobytes()
    for level in (1, 2, 3, 4, 9, 12):
        ours = codec.encode_block(raw, LZ4HC, level)
        assert ours == lz4.block.compress(raw, mode="high_compression", compression=level, store_size=False)
        assert codec.decode_block(ours, len(raw), "f", 0) == raw
    fast = codec.encode_block(raw, LZ4)  # the fast compressor: same format, bytes may differ
    assert lz4.block.decompress(fast, uncompressed_size=len(raw)) == raw
    assert _codec.lz4_version_number() >= 10900


def test_partial_decode_stops_early_but_checks_what_it_reads() -> None:
    """A piece in the first z-planes of a block decodes only those: damage after them
    goes unread, damage inside them is an error."""
    B = 16
    raw = np.random.default_rng(1).integers(0, 4, B**3, dtype=np.uint8)
    blob = codec.encode_block(raw.tobytes(), LZ4, 1)
    first_plane = piece_row(0, (0, 0, 0), (0, 0, 0), (B, B, 1), B)
    out = np.zeros((1, B, B, 1), dtype=np.uint8, order="F")
    cut = blob[: len(blob) // 2]
    assert _codec.decode_pieces(cut, np.array([0]), np.array([len(cut)]), first_plane, out, B) == -1
    np.testing.assert_array_equal(out[0, :, :, 0], raw[: B * B].reshape(B, B, order="F"))
    whole = piece_row(0, (0, 0, 0), (0, 0, 0), (B, B, B), B)
    out = np.zeros((1, B, B, B), dtype=np.uint8)
    assert _codec.decode_pieces(cut, np.array([0]), np.array([len(cut)]), whole, out, B) == 0
    assert _codec.decode_pieces(b"\xff" * 40, np.array([0]), np.array([40]), first_plane, out[:, :, :, :1], B) == 0


def test_kernel_bounds_are_checked() -> None:
    array = np.zeros((1, 8, 8, 8), dtype=np.uint8)
    none = np.zeros(1, np.int64)
    out = bytearray(_codec.compress_bound(8**3))
    with pytest.raises(ValueError, match="exceeds"):  # piece outside the array
        _codec.encode_pieces(array, piece_row(0, (0, 0, 0), (4, 0, 0), (5, 1, 1), 8), 8, b"", none, none, LZ4, 1, out, none.copy())
    with pytest.raises(ValueError, match="exceeds"):  # piece outside its block
        _codec.decode_pieces(b"x", none, none + 1, piece_row(0, (4, 0, 0), (0, 0, 0), (5, 1, 1), 8), array, 8)
    with pytest.raises(ValueError, match="columns"):
        _codec.decode_pieces(b"x", none, none + 1, np.zeros((1, 3), np.int64), array, 8)
    with pytest.raises(ValueError, match="compressed buffer"):
        _codec.decode_pieces(b"x", none, none + 2, piece_row(0, (0,) * 3, (0,) * 3, (1,) * 3, 8), array, 8)
    with pytest.raises(ValueError, match="out needs"):
        _codec.encode_pieces(array, piece_row(0, (0,) * 3, (0,) * 3, (8,) * 3, 8), 8, b"", none, none, LZ4, 1, bytearray(10), none.copy())
    with pytest.raises(ValueError, match="level"):
        _codec.encode_pieces(array, piece_row(0, (0,) * 3, (0,) * 3, (8,) * 3, 8), 8, b"", none, none, LZ4HC, 13, out, none.copy())
    with pytest.raises(ValueError, match="exceeds the file"):  # a one-block file has an edge of 8
        _codec.read_boxes([(0, np.array([100], np.uint64), 24, (1, 0, 0), array)], 8, 1, 1)
    with pytest.raises(ValueError, match="jump table"):
        _codec.read_boxes([(0, np.array([100, 200], np.uint64), 24, (0, 0, 0), array)], 8, 1, 1)
    with pytest.raises(ValueError, match="voxels of"):
        _codec.read_boxes([(0, np.array([100], np.uint64), 24, (0, 0, 0), array)], 8, 2, 1)
    with pytest.raises(ValueError, match="dimensions"):
        _codec.decode_pieces(b"x", none, none + 1, piece_row(0, (0,) * 3, (0,) * 3, (1,) * 3, 8), array[0], 8)
    with pytest.raises((ValueError, BufferError)):  # read-only output
        array.setflags(write=False)
        _codec.decode_pieces(b"x", none, none + 1, piece_row(0, (0,) * 3, (0,) * 3, (1,) * 3, 8), array, 8)


def test_block_pieces_match_a_python_reference() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        B = int(rng.choice([1, 2, 8, 32]))
        offset = tuple(int(v) for v in rng.integers(0, 3 * B, 3))
        size = tuple(int(v) for v in rng.integers(0, 3 * B, 3))
        table = _codec.block_pieces(*offset, *size, B)
        expected = []
        if all(size):
            ranges = [range(o // B, (o + n - 1) // B + 1) for o, n in zip(offset, size)]
            for bx in ranges[0]:
                for by in ranges[1]:
                    for bz in ranges[2]:
                        lo, at, sz = [], [], []
                        for a, b in enumerate((bx, by, bz)):
                            start, stop = max(offset[a], b * B), min(offset[a] + size[a], b * B + B)
                            lo.append(start - b * B)
                            at.append(start - offset[a])
                            sz.append(stop - start)
                        index = _codec.morton_encode(bx, by, bz)
                        expected.append([index, *lo, *at, *sz, int(sz == [B, B, B])])
        expected.sort()
        assert table.tolist() == expected


# -- interoperability with libwkw ---------------------------------------------------------


@SETTINGS
@given(layout=layouts(), seed=st.integers(0, 2**16), order=st.sampled_from(["F", "C", "strided"]))
def test_full_files_interoperate_with_libwkw(layout: tuple, seed: int, order: str) -> None:
    dtype, channels, block_len, file_len, block_type = layout
    edge = block_len * file_len
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        header = make_mag(root, dtype, channels, block_len, file_len, block_type)
        data = random_data(rng, (channels, edge, edge, edge), dtype)
        # wkview writes, libwkw reads
        codec.write_full_file(file_path(root, 1, 0, 0), header, arrange(data, order), threads=2)
        np.testing.assert_array_equal(libwkw_read(root, (edge, 0, 0), (edge,) * 3), data)
        # libwkw writes, wkview reads (whole file and a random box)
        libwkw_write(root, (0, 0, 0), data)
        out = arrange(np.zeros_like(data), order)
        codec.read_box(file_path(root), header, (0, 0, 0), (edge,) * 3, out, threads=2)
        np.testing.assert_array_equal(out, data)
        lo = tuple(int(v) for v in rng.integers(0, edge, 3))
        size = tuple(int(rng.integers(1, edge - o + 1)) for o in lo)
        box = np.zeros((channels, *size), dtype=dtype, order="F")
        codec.read_box(file_path(root), header, lo, size, box, threads=1)
        np.testing.assert_array_equal(box, data[:, lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]])
        if block_type == LZ4HC:  # same LZ4HC level as libwkw: the very same bytes
            with open(file_path(root), "rb") as a, open(file_path(root, 1, 0, 0), "rb") as b:
                assert a.read() == b.read()


@SETTINGS
@given(
    layout=layouts(),
    seed=st.integers(0, 2**16),
    start=st.sampled_from(["missing", "libwkw"]),
    n_writes=st.integers(1, 4),
    threads=st.sampled_from([1, 2]),
)
def test_unaligned_writes_match_numpy_and_libwkw(layout: tuple, seed: int, start: str, n_writes: int, threads: int) -> None:
    dtype, channels, block_len, file_len, block_type = layout
    edge = block_len * file_len
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        header = make_mag(root, dtype, channels, block_len, file_len, block_type)
        oracle = np.zeros((channels, edge, edge, edge), dtype=dtype)
        if start == "libwkw":
            oracle = random_data(rng, oracle.shape, dtype)
            libwkw_write(root, (0, 0, 0), oracle)
        for _ in range(n_writes):
            lo = tuple(int(v) for v in rng.integers(0, edge, 3))
            size = tuple(int(rng.integers(1, edge - o + 1)) for o in lo)
            piece = random_data(rng, (channels, *size), dtype)
            order = ["F", "C", "strided"][int(rng.integers(0, 3))]
            codec.write_box(file_path(root), header, lo, arrange(piece, order), threads=threads)
            oracle[:, lo[0] : lo[0] + size[0], lo[1] : lo[1] + size[1], lo[2] : lo[2] + size[2]] = piece
            np.testing.assert_array_equal(libwkw_read(root, (0, 0, 0), (edge,) * 3), oracle)
        out = np.zeros_like(oracle, order="F")
        codec.read_box(file_path(root), header, (0, 0, 0), (edge,) * 3, out, threads=threads)
        np.testing.assert_array_equal(out, oracle)
        assert [p for p in os.listdir(Path(file_path(root)).parent) if p.endswith(".tmp")] == []


def test_read_missing_file_gives_zeros(tmp_path: Path) -> None:
    header = make_mag(tmp_path, np.uint16, 3, 8, 2, LZ4HC)
    out = np.full((3, 4, 5, 6), 9, dtype=np.uint16)
    codec.read_box(file_path(tmp_path), header, (1, 2, 3), (4, 5, 6), out)
    assert not out.any()


def test_block_granular_write_keeps_untouched_blocks(tmp_path: Path) -> None:
    header = make_mag(tmp_path, np.uint8, 1, 8, 4, LZ4)
    rng = np.random.default_rng(1)
    data = random_data(rng, (1, 32, 32, 32), np.uint8)
    libwkw_write(tmp_path, (0, 0, 0), data)
    path = file_path(tmp_path)
    with codec.CompressedFile.open(path, header) as f:
        before = f.read_blocks(range(64))
    piece = random_data(rng, (1, 3, 4, 5), np.uint8)
    codec.write_box(path, header, (9, 10, 11), piece)  # inside block (1, 1, 1): Morton index 7
    with codec.CompressedFile.open(path, header) as f:
        after = f.read_blocks(range(64))
        assert f.header.block_type == LZ4
    changed = [i for i in range(64) if before[i] != after[i]]
    assert changed == [7]
    data[:, 9:12, 10:14, 11:16] = piece
    np.testing.assert_array_equal(libwkw_read(tmp_path, (0, 0, 0), (32, 32, 32)), data)


def test_write_into_missing_file_stores_zeros_elsewhere(tmp_path: Path) -> None:
    header = make_mag(tmp_path, np.float32, 1, 8, 2, LZ4HC)
    piece = np.full((1, 2, 2, 2), 3.5, dtype=np.float32)
    codec.write_box(file_path(tmp_path, 0, 1, 0), header, (14, 0, 7), piece, level=4)
    expected = np.zeros((1, 16, 16, 16), dtype=np.float32)
    expected[:, 14:16, 0:2, 7:9] = 3.5
    np.testing.assert_array_equal(libwkw_read(tmp_path, (0, 16, 0), (16, 16, 16)), expected)


def test_encode_levels_and_types() -> None:
    raw = bytes(range(256)) * 16
    for level in range(1, 13):
        assert lz4.block.decompress(codec.encode_block(raw, LZ4HC, level), uncompressed_size=len(raw)) == raw
    assert codec.decode_block(codec.encode_block(raw, LZ4, 1), len(raw), "f", 0) == raw
    for bad in (0, 13, 2.0, True):
        with pytest.raises(ValueError):
            codec.encode_block(raw, LZ4HC, bad)
    with pytest.raises(ValueError):
        codec.encode_block(raw, 1, 9)


def test_bad_arguments(tmp_path: Path) -> None:
    header = make_mag(tmp_path, np.uint16, 1, 8, 2, LZ4HC)
    with pytest.raises(ValueError):  # box outside the file
        codec.write_box(file_path(tmp_path), header, (10, 0, 0), np.zeros((1, 7, 1, 1), np.uint16))
    with pytest.raises(ValueError):  # wrong dtype
        codec.write_box(file_path(tmp_path), header, (0, 0, 0), np.zeros((1, 1, 1, 1), np.uint8))
    with pytest.raises(ValueError):  # wrong channel count
        codec.read_box(file_path(tmp_path), header, (0, 0, 0), (1, 1, 1), np.zeros((2, 1, 1, 1), np.uint16))
    with pytest.raises(ValueError):  # raw mags are not this codec's business
        codec.read_box(file_path(tmp_path), wkw.Header(np.uint8), (0, 0, 0), (1, 1, 1), np.zeros((1, 1, 1, 1), np.uint8))
    with pytest.raises(ValueError):
        codec.write_full_file(file_path(tmp_path), header, np.zeros((1, 8, 8, 8), np.uint16))
    one = np.zeros((1, 1, 1, 1), np.uint16)
    with pytest.raises(ValueError, match="twice"):  # two boxes of one file in one write would lose one
        codec.write_boxes(header, [(file_path(tmp_path), (0, 0, 0), one), (file_path(tmp_path), (1, 1, 1), one)])
    assert not os.path.exists(file_path(tmp_path))


# -- damaged files ------------------------------------------------------------------------


def _damaged(tmp_path: Path, kind: str) -> tuple[wkw.Header, str]:
    header = make_mag(tmp_path, np.uint16, 1, 8, 2, LZ4HC)
    data = random_data(np.random.default_rng(2), (1, 16, 16, 16), np.uint16)
    libwkw_write(tmp_path, (0, 0, 0), data)
    path = file_path(tmp_path)
    raw = bytearray(Path(path).read_bytes())
    n = 8
    ends = list(struct.unpack(f"<{n}Q", raw[16 : 16 + 8 * n]))
    data_offset = 16 + 8 * n
    blocks = [bytes(raw[(data_offset if i == 0 else ends[i - 1]) : ends[i]]) for i in range(n)]

    def rebuild(new_blocks: list[bytes]) -> bytearray:
        out = bytearray(raw[:16])
        pos = data_offset
        table = []
        for b in new_blocks:
            pos += len(b)
            table.append(pos)
        out += struct.pack(f"<{n}Q", *table) + b"".join(new_blocks)
        return out

    if kind == "magic":
        raw[0:3] = b"XKW"
    elif kind == "empty":
        raw = bytearray()
    elif kind == "header_only":
        raw = raw[:16]
    elif kind == "voxel_type":
        raw[6] = 1  # uint8 in a uint16 mag
    elif kind == "non_monotone":
        ends[2], ends[3] = ends[3], ends[2]
        raw[16 : 16 + 8 * n] = struct.pack(f"<{n}Q", *ends)
    elif kind == "truncated":
        raw = raw[:-5]
    elif kind == "appended":
        raw += b"\0" * 7
    elif kind == "short_block":
        raw = rebuild([blocks[0][:-3], *blocks[1:]])
    elif kind == "wrong_size":
        small = lz4.block.compress(b"\1" * 100, mode="high_compression", store_size=False)
        raw = rebuild([small, *blocks[1:]])
    elif kind == "garbage_block":
        raw = rebuild([b"\xff" * len(blocks[0]), *blocks[1:]])
    else:  # pragma: no cover
        raise AssertionError(kind)
    Path(path).write_bytes(bytes(raw))
    return header, path


DAMAGES = [
    "magic", "empty", "header_only", "voxel_type", "non_monotone", "truncated",
    "appended", "short_block", "wrong_size", "garbage_block",
]


@pytest.mark.parametrize("kind", DAMAGES)
def test_damaged_files_raise(tmp_path: Path, kind: str) -> None:
    header, path = _damaged(tmp_path, kind)
    out = np.zeros((1, 8, 8, 8), dtype=np.uint16)
    with pytest.raises(CorruptFileError, match=str(path)):
        codec.read_box(path, header, (0, 0, 0), (8, 8, 8), out)
    # a partial write must not paper over the damage either
    with pytest.raises(CorruptFileError, match=str(path)):
        codec.write_box(path, header, (1, 0, 0), np.ones((1, 7, 8, 8), np.uint16))
    assert [p for p in os.listdir(Path(path).parent) if p.endswith(".tmp")] == []


def test_parse_header_and_jump_table(tmp_path: Path) -> None:
    make_mag(tmp_path, np.uint16, 3, 8, 2, LZ4)
    libwkw_write(tmp_path, (0, 0, 0), random_data(np.random.default_rng(3), (3, 16, 16, 16), np.uint16))
    path = file_path(tmp_path)
    raw = Path(path).read_bytes()
    parsed = codec.parse_header(raw[:16], path)
    assert parsed == codec.FileHeader(8, 2, LZ4, 2, 6, 16 + 64)
    assert parsed.pack() == raw[:16]
    with open(path, "rb") as f:
        ends = codec.read_jump_table(f, parsed, path, len(raw))
    assert ends.dtype == np.uint64 and ends[-1] == len(raw) and np.all(np.diff(ends.astype(np.int64)) > 0)
    with pytest.raises(CorruptFileError, match="x0.wkw"):
        codec.parse_header(raw[:15], path)
    with pytest.raises(CorruptFileError, match="block type"):
        codec.parse_header(raw[:5] + b"\x07" + raw[6:16], path)
    assert codec.parse_header(Path(tmp_path / "header.wkw").read_bytes(), "h").data_offset == 0


def test_file_cut_after_opening_raises(tmp_path: Path) -> None:
    """A cached jump table that outlives its file's end: the read stops with an error."""
    header = make_mag(tmp_path, np.uint16, 1, 8, 2, LZ4HC)
    libwkw_write(tmp_path, (0, 0, 0), random_data(np.random.default_rng(4), (1, 16, 16, 16), np.uint16))
    path = file_path(tmp_path)
    with codec.CompressedFile.open(path, header) as f:
        os.truncate(path, f.block_range(7)[0] + 1)
        out = np.zeros((1, 16, 16, 16), dtype=np.uint16)
        with pytest.raises(CorruptFileError, match="truncated"):
            codec.read_box(path, header, (0, 0, 0), (16, 16, 16), out, opened=f)


# -- several files in one pipelined write ---------------------------------------------------


def _three_files(root: Path) -> tuple[wkw.Header, np.ndarray]:
    """A mag of uint16 files of 64^3 voxels (1 MiB raw blocks per file), three of them filled."""
    header = make_mag(root, np.uint16, 1, 16, 4, LZ4HC)
    data = random_data(np.random.default_rng(5), (1, 192, 64, 64), np.uint16)
    libwkw_write(root, (0, 0, 0), data)
    return header, data


def test_write_boxes_threads_give_the_same_bytes(tmp_path: Path) -> None:
    new = random_data(np.random.default_rng(6), (1, 150, 60, 50), np.uint16)
    results = []
    for threads in (1, 2):
        root = tmp_path / f"t{threads}"
        header, data = _three_files(root)
        boxes = [
            (file_path(root, x), (max(0, 10 - 64 * x), 3, 7), new[:, max(0, 64 * x - 10) : 64 * x + 54, :, :])
            for x in range(3)
        ]
        boxes = [(p, o, d[:, : 64 - o[0]]) for p, o, d in boxes if d.shape[1]]
        stats = codec.write_boxes(header, boxes, level=3, threads=threads)
        assert [s.path for s in stats] == [b[0] for b in boxes]
        data[:, 10:160, 3:63, 7:57] = new
        np.testing.assert_array_equal(libwkw_read(root, (0, 0, 0), (192, 64, 64)), data)
        results.append([Path(file_path(root, x)).read_bytes() for x in range(3)])
    assert results[0] == results[1]


def test_failed_write_leaves_files_whole(tmp_path: Path) -> None:
    """A damaged second file stops a threaded three-file write: no temporary file stays,
    the damaged file is untouched, every other file holds its old or its new voxels."""
    header, data = _three_files(tmp_path)
    bad = file_path(tmp_path, 1)
    raw = bytearray(Path(bad).read_bytes())
    start, (end,) = 16 + 8 * 64, struct.unpack("<Q", raw[16:24])
    raw[start:end] = b"\xff" * (end - start)  # block 0, which the box covers partly, no longer decodes
    Path(bad).write_bytes(bytes(raw))
    new = np.full((1, 60, 64, 63), 3, np.uint16)
    boxes = [(file_path(tmp_path, x), (2, 0, 1), new) for x in range(3)]
    with pytest.raises(CorruptFileError, match="x1.wkw"):
        codec.write_boxes(header, boxes, level=2, threads=2)
    assert Path(bad).read_bytes() == bytes(raw)
    assert [p for p in os.listdir(Path(bad).parent) if p.endswith(".tmp")] == []
    for x in (0, 2):
        got = libwkw_read(tmp_path, (64 * x, 0, 0), (64, 64, 64))
        old = data[:, 64 * x : 64 * x + 64]
        written = old.copy()
        written[:, 2:62, :, 1:64] = 3
        assert np.array_equal(got, old) or np.array_equal(got, written)


@settings(max_examples=examples(150), deadline=None)
@given(
    flips=st.lists(st.tuples(st.integers(0, 2**31), st.integers(1, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 2**31)),
    box=st.tuples(st.integers(0, 15), st.integers(0, 15), st.integers(0, 15)),
)
def test_random_damage_raises_or_reads_never_crashes(flips: list, cut: int | None, box: tuple) -> None:
    """Flipped bytes anywhere (header, jump table, blocks) and cut-off ends: every read
    and partial write either works or raises CorruptFileError, never another error and
    never a crash. (WKW has no checksums: a flipped literal byte still decodes, to
    other voxels; only damage to the structure is detectable.)"""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        header = make_mag(root, np.uint16, 2, 8, 2, LZ4HC)
        data = random_data(np.random.default_rng(8), (2, 16, 16, 16), np.uint16)
        libwkw_write(root, (0, 0, 0), data)
        path = file_path(root)
        raw = bytearray(Path(path).read_bytes())
        for at, xor in flips:
            raw[at % len(raw)] ^= xor
        if cut is not None:
            raw = raw[: cut % len(raw)]
        Path(path).write_bytes(bytes(raw))
        size = tuple(16 - v for v in box)
        out = np.zeros((2, *size), dtype=np.uint16)
        try:
            codec.read_box(path, header, box, size, out)
        except CorruptFileError:
            pass
        try:
            codec.write_box(path, header, box, np.ones((2, 1, 1, 1), np.uint16))
        except CorruptFileError:
            pass
        assert [p for p in os.listdir(Path(path).parent) if p.endswith(".tmp")] == []
