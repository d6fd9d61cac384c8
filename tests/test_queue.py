"""The ADL queue (adljax.engine.stages.queue.take_from_top) against a walk down the sorted queue, at a
benchmark book's size: ties at the cut, infinite, signed-zero and negative scores, float64 scores
too close to tell apart in float32, needs of nothing and of more than the queue holds."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from adljax.engine.stages.queue import take_from_top

R = 4098          # rows: the benchmark's 4,096 accounts, the vault and the liquidity providers
STRIDE = 8        # queues 6-8 place their candidates every STRIDE rows


def walk(score, weight, need):
    """Units taken per candidate, walking the queue from the highest score; equal scores share pro rata."""
    taken = np.zeros_like(weight, dtype=np.float64)
    for a in range(score.shape[0]):
        w = weight[a].astype(np.float64)
        total = w.sum()
        if need[a] <= 0:
            continue
        if need[a] >= total:
            taken[a] = w
            continue
        left = float(need[a])
        cand = w > 0
        for s in sorted(set(score[a][cand].tolist()), reverse=True):
            group = cand & (score[a] == s)
            g = w[group].sum()
            share = min(1.0, left / g)
            taken[a][group] = w[group] * share
            left -= g * share
            if left <= 0:
                break
    return taken


def cases(dtype):
    """[A, R] scores, weights and needs: one queue per row, each a different difficulty."""
    rng = np.random.default_rng(7)
    a = 11
    score = rng.lognormal(0.0, 2.0, (a, R))
    weight = np.where(rng.random((a, R)) < 0.5, rng.random((a, R)) * 10, 0.0)
    total = weight.sum(-1)
    need = np.array([3.0, 40.0, 0.3 * total[2], 0.0, total[4] + 1.0, 25.0, 12.0, 6.5, 63.5, 8.0, 2.5])
    # 5: ties at the cut, scores on a coarse grid; and ±inf, ±0 and negative scores
    score[5] = np.round(score[5], 0) - 3.0
    score[5, :40] = np.inf
    weight[5, :40] = np.where(np.arange(40) < 2, 1.0, 0.0)            # 2 units at +inf
    score[5, 40:60] = np.where(np.arange(20) % 2, -0.0, 0.0)
    # 6: 513 candidates tied at the top score (1.0), every candidate with the same weight
    score[6] = np.where(np.arange(R) % STRIDE == 0, 1.0, rng.random(R) * 0.5)
    weight[6] = 1.0
    # 7: a cluster of 200 float64 scores that are one float32 value (1.0), ascending with the row,
    # and one candidate above them: the cut falls inside the cluster, at its far end
    score[7] = -1.0
    weight[7] = 0.0
    score[7, 0], weight[7, 0] = 100.0, 1.0
    blocks = np.arange(1, 201)
    score[7, blocks * STRIDE] = 1.0 + blocks * 1e-10 if dtype == np.float64 else 1.0
    weight[7, blocks * STRIDE] = 1.0
    # 8: 64 candidates at 11..74 and 7 more at 2: the cut falls at 11, the lowest of the 64
    score[8], weight[8] = -1.0, 0.0
    score[8, np.arange(64) * STRIDE] = 10.0 + np.arange(64, 0, -1)
    score[8, 1:STRIDE] = 2.0
    weight[8, np.arange(64) * STRIDE] = 1.0
    weight[8, 1:STRIDE] = 1.0
    # 9: 3 candidates at 1, then 10 at +0 and -0 (one tie), then negative scores: 8 units cut at 0
    # 10: only negative scores, -1 first: 2.5 units take -1 and -2 whole and half of -3
    score[9:], weight[9:] = -50.0, 0.0
    score[9, :3], score[9, 3:13], score[9, 13:20] = 1.0, np.where(np.arange(10) % 2, -0.0, 0.0), -np.arange(1, 8)
    weight[9, :20] = 1.0
    score[10, :20:2], weight[10, :20:2] = -np.arange(10, 0, -1), 1.0
    return score.astype(dtype), weight.astype(dtype), need.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cut_off_is_the_sorted_walk(dtype):
    score, weight, need = cases(dtype)
    want = walk(score, weight, need)
    rtol = 1e-12 if dtype == np.float64 else 2e-6
    # Each queue as its own scenario (on CPU the cut-off is looped and skipped scenario by scenario),
    # under jit and vmap; all queues as one scenario; and a batch of two, in reverse.
    each = jax.jit(jax.vmap(take_from_top))(*(jnp.asarray(x[:, None]) for x in (score, weight, need)))[:, 0]
    pair = jax.vmap(take_from_top)(*(jnp.asarray(np.stack([x, x[::-1]])) for x in (score, weight, need)))[1][::-1]
    one = take_from_top(*map(jnp.asarray, (score, weight, need)))
    for name, got in [("each queue alone", each), ("one scenario", one), ("batched, reversed", pair)]:
        got = np.asarray(got, np.float64)
        for a in range(len(need)):     # the partial share is the need less a sum: rounding of the need's size
            scale = max(float(min(need[a], weight[a].sum())), float(weight[a].max()))
            np.testing.assert_allclose(got[a], want[a], rtol=rtol, atol=4 * rtol * scale, err_msg=f"{name}, queue {a}")
        np.testing.assert_allclose(got.sum(-1), np.minimum(need, weight.sum(-1)), rtol=rtol, err_msg=name)
    # hand-worked, queue 7: 100 first (1 unit), then the cluster from its top: in float64 its last 5
    # candidates whole and half of the one before; in float32 the 200 equal scores share 5.5 units pro rata
    all_queues = np.asarray(take_from_top(*map(jnp.asarray, (score, weight, need))))
    np.testing.assert_allclose(all_queues[9, :20], [1.0] * 3 + [0.5] * 10 + [0.0] * 7)
    np.testing.assert_allclose(all_queues[10, :20:2], [0.0] * 7 + [0.5, 1.0, 1.0])
    got = all_queues[7]
    rows = np.arange(1, 201) * STRIDE
    assert got[0] == 1.0
    if dtype == np.float64:
        np.testing.assert_allclose(got[rows[-5:]], 1.0)
        np.testing.assert_allclose(got[rows[-6]], 0.5)
        np.testing.assert_array_equal(got[rows[:-6]], 0.0)
    else:
        np.testing.assert_allclose(got[rows], 5.5 / 200, rtol=1e-6)
