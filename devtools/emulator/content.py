"""File content for the emulated drive: literal bytes, or bytes generated from a seed.

Generated content is a pseudo-random block (from the seed) repeated, with the block index XORed
into the first 8 bytes of each block, so blocks differ and a mirror that swaps or drops blocks
fails its hash check. Nothing is held in memory except one block per seed.

The quickXorHash of generated content is computed in closed form: quickXorHash is linear (XOR)
and a block of 160*k bytes starts at bit offset 0 of the 160-bit state, so every full block lands
in the same place; only the XOR of the block indices and the parity of the block count matter.
A 10 GB file costs the same as a 1 MB one.
"""

from __future__ import annotations

import base64
import functools
import random
from collections.abc import Iterator
from dataclasses import dataclass

import quickxorhash

# A multiple of 160 bytes: byte i lands at bit 11*i mod 160, which is 0 whenever i is a multiple
# of 160, so every block starts at bit offset 0 of the state.
BLOCK_SIZE = 160 * 4096  # 655,360 bytes
ZERO_HASH = "AAAAAAAAAAAAAAAAAAAAAAAAAAA="


def quick_xor_hash(data: bytes) -> str:
    h = quickxorhash.quickxorhash()
    h.update(data)
    return base64.b64encode(h.digest()).decode()


def _state(data: bytes) -> int:
    """The 160-bit state before the length is XORed in (bytes 12..19 hold the length)."""
    h = quickxorhash.quickxorhash()
    h.update(data)
    return int.from_bytes(h.digest(), "little") ^ (len(data) << 96)


def _finish(state: int, length: int) -> str:
    return base64.b64encode((state ^ (length << 96)).to_bytes(20, "little")).decode()


def _xor_upto(n: int) -> int:
    """0 ^ 1 ^ ... ^ n."""
    return (n, 1, n + 1, 0)[n % 4]


@functools.lru_cache(maxsize=8)
def _pattern(seed: int) -> bytes:
    return random.Random(seed).randbytes(BLOCK_SIZE)


@functools.lru_cache(maxsize=8)
def _pattern_state(seed: int) -> int:
    return _state(_pattern(seed))


def generated_block(seed: int, index: int) -> bytes:
    pattern = _pattern(seed)
    head = int.from_bytes(pattern[:8], "little") ^ index
    return head.to_bytes(8, "little") + pattern[8:]


class Content:
    size: int

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        raise NotImplementedError

    def quick_xor_hash(self) -> str:
        raise NotImplementedError

    def read(self) -> bytes:
        return b"".join(self.chunks())

    def read_range(self, start: int, end: int) -> bytes:
        return b"".join(self.chunks(start, end))


@dataclass(eq=False)
class BytesContent(Content):
    data: bytes

    def __post_init__(self) -> None:
        self.size = len(self.data)
        self._hash: str | None = None

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        for offset in range(start, end, chunk_size):
            yield self.data[offset : min(offset + chunk_size, end)]

    def quick_xor_hash(self) -> str:
        if self._hash is None:
            self._hash = quick_xor_hash(self.data)
        return self._hash


@dataclass(eq=False)
class GeneratedContent(Content):
    size: int
    seed: int

    def __post_init__(self) -> None:
        self._hash: str | None = None

    def chunks(self, start: int = 0, end: int | None = None, chunk_size: int = 1 << 16) -> Iterator[bytes]:
        end = self.size if end is None else min(end, self.size)
        offset = start
        while offset < end:
            index, within = divmod(offset, BLOCK_SIZE)
            block = generated_block(self.seed, index)
            piece_end = min(BLOCK_SIZE, within + (end - offset), within + chunk_size)
            piece = block[within:piece_end]
            yield piece
            offset += len(piece)

    def quick_xor_hash(self) -> str:
        if self._hash is None:
            full_blocks, tail = divmod(self.size, BLOCK_SIZE)
            state = 0
            if full_blocks % 2:
                state ^= _pattern_state(self.seed)
            if full_blocks:
                state ^= _state(_xor_upto(full_blocks - 1).to_bytes(8, "little"))
            if tail:
                state ^= _state(generated_block(self.seed, full_blocks)[:tail])
            self._hash = _finish(state, self.size)
        return self._hash
