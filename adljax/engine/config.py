"""The engine's configuration: the numbers that shape the compiled program, not the rules' answers.

:class:`EngineConfig` is one frozen, hashable value passed as a static argument
(:func:`adljax.engine.waterfall.run`'s ``config``, :func:`adljax.simulate`'s
``config``) and from there, as a plain Python argument, to every function that
reads one of its numbers while tracing. A new config compiles a new program;
every config gives the same numbers up to the rounding of sums (which depends on
the order they are taken in), since each field chooses only how the engine does
its work: how many scenarios run together, how many rows a stage gathers before
it falls back on the whole book, how a sum is written.
"""
from __future__ import annotations

import dataclasses

import jax

from ..model.errors import InputError


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Static engine settings (hashable; a new value compiles a new program).

    Attributes:
      block: scenarios run through the time loop together (one ``lax.map`` over blocks, each block
        its own scan). ``"auto"`` (the default): :attr:`cpu_block` on CPU, the whole batch on an
        accelerator, where the batch is what fills the device; ``None``: the whole batch on any
        backend; a whole number ``>= 1``: at most that many (:func:`adljax.engine.waterfall.blocks`
        makes the blocks even).
      cpu_block: scenarios per block when ``block`` is ``"auto"`` and the backend is the CPU. 8: a
        block's state stays in the CPU's caches across a step's passes (8 × 4 markets × 4,096 rows ×
        4 bytes = 512 KiB an array), and each block skips the stages none of its own scenarios needs;
        blocks of 4 and 8 measured fastest on the 2-core CPU, 8 on the default study
        (docs/performance.md).
      gathered_rows: liquidatable trader rows per scenario up to which the hard mode's liquidation
        stage runs on those rows gathered (with the vault and LP rows) instead of the whole book;
        a batch in which some scenario has more runs on the whole book. Rows. 256: a cascade's
        steps mostly have fewer, and 1,024 was no faster (docs/performance.md). A book with no
        more trader rows than this compiles the whole-book path only.
      first_candidates: backstop candidates (rows) the vault's walk in row order first tries,
        gathered; it walks the whole book only when it carries all of them and there are more.
        256, as ``gathered_rows``. A book with no more rows than this always walks the whole book.
      unrolled_markets: up to this many markets, a sum (any, max) over the market axis is written as
        elementwise operations in market order, which XLA fuses into the kernels around it; above,
        one ``jnp`` reduction, a kernel of its own. Markets. 8: the benchmarks' 1–8 markets fuse.
      prefix_block: rows per block of the blocked running sum (:func:`adljax.engine.prefix.cumsum`):
        a product with a triangular matrix within blocks, a short running sum of block totals. 64:
        0.9 ms against ``jnp.cumsum``'s 5.0 ms for [32, 4, 4098] float32 on the 2-core CPU.
      queue_rows_round: the ADL queue sides' row sets (:func:`adljax.engine.stages.adl.queue_sizes`,
        found on the host from the starting book) are rounded up to a multiple of this many rows,
        so that books of similar shape share one program. Rows. 8.
      adl_digit_bits: bits of the ADL queue's sort key that each pass of the position engine's
        cut-off search decides (:func:`adljax.engine.positions.adl.take_from_top`): one per-market
        histogram of ``2**bits + 2`` buckets a pass, ``32/bits`` passes for a float32 key, ``64/bits``
        for a float64 one. 1, 2, 4 or 8. 4: 8-bit digits halve the passes but their [A, 258]
        histograms grew the venue book's compiled memory by 13.6 % at 720 markets, where it is to stay
        flat in markets (docs/performance.md).
      capacity_bits: a position book's trader rows and trader positions run padded up to a capacity
        (:meth:`capacity`), so that books of similar size share one compiled program: a count pads to
        the next multiple of ``2**capacity_bits`` or of ``2**(b − capacity_bits)`` (``b`` its bit length),
        whichever is larger: for 6, of 64 up to 4,096, above that at most 3 % (``2**(1 − capacity_bits)``)
        more. Small books' programs cost about the same at any of these sizes; a venue's pays at most 3 %.
        0: no padding; at most 16.
      skip_quiet_steps: the position engine, hard mode, paths without funding: a step whose marks have
        moved from those of the last full margin check by less than the book's reach
        (:func:`adljax.engine.positions.margin.reach`: the smallest move that could bring a row to its
        requirement) skips the margin check and so every stage, with the same numbers. The reach is set
        by the row nearest its requirement; after a step in which a stage acted the next step checks.
        True.
    """

    block: int | None | str = "auto"
    cpu_block: int = 8
    gathered_rows: int = 256
    first_candidates: int = 256
    unrolled_markets: int = 8
    prefix_block: int = 64
    queue_rows_round: int = 8
    adl_digit_bits: int = 4
    capacity_bits: int = 6
    skip_quiet_steps: bool = True

    def __post_init__(self):
        for name in ("cpu_block", "gathered_rows", "first_candidates", "prefix_block", "queue_rows_round"):
            _whole(name, getattr(self, name), 1)
        _whole("unrolled_markets", self.unrolled_markets, 0)
        _whole("capacity_bits", self.capacity_bits, 0)
        if self.capacity_bits > 16:      # 2**17 rows or positions of padding for the smallest book
            raise InputError(f"config.capacity_bits: at most 16 (a book pads to a multiple of 2**capacity_bits), "
                             f"got {self.capacity_bits!r}")
        if not isinstance(self.skip_quiet_steps, bool):
            raise InputError(f"config.skip_quiet_steps: must be True or False, got {self.skip_quiet_steps!r}")
        if isinstance(self.adl_digit_bits, bool) or self.adl_digit_bits not in (1, 2, 4, 8):
            raise InputError(f"config.adl_digit_bits: must be 1, 2, 4 or 8 (a key's 32 or 64 bits in whole "
                             f"passes), got {self.adl_digit_bits!r}")
        if self.block is not None and not (isinstance(self.block, str) and self.block == "auto"):
            _whole("block", self.block, 1, "a whole number of scenarios >= 1, None (the whole batch) or 'auto'")

    def block_size(self, backend: str | None = None) -> int | None:
        """Scenarios per block on ``backend`` (JAX's default backend if None); None: the whole batch."""
        if self.block != "auto":
            return self.block
        backend = jax.default_backend() if backend is None else backend
        return self.cpu_block if backend == "cpu" else None

    def capacity(self, count: int) -> int:
        """The padded size of ``count`` rows or positions (:attr:`capacity_bits`): ``count`` itself when
        padding is off."""
        count = int(count)
        bits = self.capacity_bits
        if bits == 0:
            return count
        step = 1 << max(bits, count.bit_length() - bits)
        return max(1, -(-count // step)) * step

    def replace(self, **changes) -> EngineConfig:
        """A copy with ``changes`` (checked like the constructor's arguments)."""
        return dataclasses.replace(self, **changes)


def _whole(name: str, value, lo: int, what: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise InputError(f"config.{name}: must be {what or f'a whole number >= {lo}'}, got {value!r}")


#: The default configuration: the engine's defaults, and the default of the helpers that take a number of it.
DEFAULT = EngineConfig()
