import numpy as np
import pytest
import torch

import trainer
from trainer import TokenLoader, check_token_ids, get_batch, open_tokens
from trainer import data as data_module


def test_public_names_exist():
    for name in trainer.__all__:
        assert hasattr(trainer, name), name


def test_get_batch_shapes_and_shift():
    data = np.arange(100, dtype=np.uint16)
    x, y = get_batch(data, batch_size=7, context_length=5, device="cpu")
    assert x.shape == y.shape == (7, 5)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(y, x + 1)  # consecutive ids: the target is the next token
    assert torch.equal(x[:, 1:], x[:, :-1] + 1)  # each row is one contiguous window


def test_get_batch_starts_are_uniform_over_all_valid_positions():
    np.random.seed(0)
    data = np.arange(20, dtype=np.int64)
    context = 4
    starts = np.concatenate(
        [get_batch(data, 64, context, "cpu")[0][:, 0].numpy() for _ in range(500)]
    )
    # Valid starts are 0 .. len - context - 1 (the target of the last input must exist).
    assert starts.min() == 0 and starts.max() == len(data) - context - 1
    counts = np.bincount(starts, minlength=len(data) - context)
    expected = len(starts) / (len(data) - context)
    # 32,000 draws over 16 bins: each count is within 5 sigma of uniform.
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_get_batch_rejects_bad_input():
    with pytest.raises(ValueError, match="fewer than context_length"):
        get_batch(np.arange(5), 2, 5, "cpu")
    with pytest.raises(ValueError, match="1-D"):
        get_batch(np.zeros((4, 4), dtype=np.int64), 2, 2, "cpu")
    with pytest.raises(ValueError, match="integer"):
        get_batch(np.zeros(40, dtype=np.float32), 2, 2, "cpu")
    with pytest.raises((RuntimeError, AssertionError)):
        get_batch(np.arange(100), 2, 4, "cuda:99")


def test_loader_prefetch_equals_no_prefetch_equals_get_batch():
    data = np.arange(500, dtype=np.uint16)
    a = TokenLoader(data, 4, 8, seed=3, prefetch=True)
    b = TokenLoader(data, 4, 8, seed=3, prefetch=False)
    generator = np.random.default_rng(3)
    for _ in range(10):
        xa, ya = a.next()
        xb, yb = b.next()
        xr, yr = get_batch(data, 4, 8, "cpu", generator=generator)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert torch.equal(xa, xr) and torch.equal(ya, yr)
    a.close()


@pytest.mark.parametrize("prefetch", [True, False])
def test_loader_state_resumes_the_stream(prefetch):
    data = np.arange(1000, dtype=np.uint32)
    loader = TokenLoader(data, 3, 6, seed=11, prefetch=prefetch)
    for _ in range(4):
        loader.next()
    state = loader.state_dict()
    expected = [loader.next() for _ in range(5)]
    fresh = TokenLoader(data, 3, 6, seed=999, prefetch=prefetch)
    fresh.next()  # a prefetched batch from the wrong seed must be discarded by load_state_dict
    fresh.load_state_dict(state)
    for want, got in zip(expected, (fresh.next() for _ in range(5))):
        assert torch.equal(want[0], got[0]) and torch.equal(want[1], got[1])


def test_ranks_split_the_global_batch():
    data = np.arange(2000, dtype=np.uint16)
    single = TokenLoader(data, 8, 5, seed=5)
    ranks = [TokenLoader(data, 4, 5, seed=5, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        x, _ = single.next()
        parts = [loader.next()[0] for loader in ranks]
        assert not torch.equal(parts[0], parts[1])  # each rank draws its own rows
        assert torch.equal(torch.cat(parts), x)  # together: the single process's batch


def test_vocab_check_scans_in_chunks(monkeypatch):
    monkeypatch.setattr(data_module, "_SCAN_CHUNK_TOKENS", 7)
    data = np.zeros(100, dtype=np.uint16)
    data[73] = 50
    check_token_ids(data, 51)
    with pytest.raises(ValueError, match=r"token id 50 but vocab_size is 50.*position 73"):
        check_token_ids(data, 50, "train.bin")
    with pytest.raises(ValueError, match="vocab_size"):
        TokenLoader(data, 2, 4, vocab_size=10)
    signed = np.zeros(30, dtype=np.int32)
    signed[20] = -1
    with pytest.raises(ValueError, match="negative token id -1 at position 20"):
        check_token_ids(signed, 10)


def test_open_tokens_raw_and_npy(tmp_path):
    ids = np.array([1, 2, 3, 65535], dtype=np.uint16)
    ids.tofile(tmp_path / "a.bin")
    assert np.array_equal(open_tokens(tmp_path / "a.bin"), ids)
    wide = np.array([1, 70000], dtype=np.uint32)
    wide.tofile(tmp_path / "b.u32")
    assert np.array_equal(open_tokens(tmp_path / "b.u32"), wide)
    np.save(tmp_path / "c.npy", wide)
    loaded = open_tokens(tmp_path / "c.npy")
    assert isinstance(loaded, np.memmap) and np.array_equal(loaded, wide)
    (tmp_path / "odd.bin").write_bytes(b"\x01\x02\x03")
    with pytest.raises(ValueError, match="not a multiple of 2"):
        open_tokens(tmp_path / "odd.bin")
    with pytest.raises(FileNotFoundError, match=r"missing\.bin"):
        open_tokens(tmp_path / "missing.bin")
    x, _ = get_batch(open_tokens(tmp_path / "a.bin"), 2, 2, "cpu")  # a memmap works as data
    assert x.shape == (2, 2)
