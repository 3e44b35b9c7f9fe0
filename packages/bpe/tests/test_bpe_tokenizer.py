"""Tokenizer: encode against a reference, round trips, special tokens, streaming, encode_file."""

from __future__ import annotations

import io
import pickle
import random
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import numpy as np
import pytest
import regex

from bpe import GPT2_PATTERN, Tokenizer, train_bpe
from bpe.batch_bpe import BatchBPE, applies_to


def reference_encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """Merges applied one after another in training order to each pre-token (CS336 §2.6)."""
    ids = []
    specials = sorted(tokenizer.special_tokens, key=len, reverse=True)
    pieces = (
        regex.split("(" + "|".join(map(regex.escape, specials)) + ")", text) if specials else [text]
    )
    encoder = {token: i for i, token in sorted(tokenizer.vocab.items(), reverse=True)}
    for k, piece in enumerate(pieces):
        if k % 2:
            ids.append(tokenizer.special_ids[piece])
            continue
        for word in regex.findall(GPT2_PATTERN, piece):
            parts = [bytes([b]) for b in word.encode("utf-8")]
            for left, right in tokenizer.merges:
                i, out = 0, []
                while i < len(parts):
                    if i + 1 < len(parts) and parts[i] == left and parts[i + 1] == right:
                        out.append(left + right)
                        i += 2
                    else:
                        out.append(parts[i])
                        i += 1
                parts = out
            ids += [encoder[p] for p in parts]
    return ids


def random_unicode(rng: random.Random, length: int) -> str:
    pools = [
        "abcdefghijklmnopqrstuvwxyz ABCXYZ 0123456789 .,;:!?'\"-()[]{}",
        "\r\n\t\x00\x0b\x0c\x1c\x85\xa0\u2028\u3000 ",
        "éèêëàâäôöûüçñßøåæœ",
        "\u0301\u0308\u0323\u0337\u20dd",  # combining marks
        "😀🎉👍🏽👨‍👩‍👧🇫🇷",  # emoji, a modifier, a ZWJ family, a flag
        "中文字日本語한국어العربيةעברית",
        "'s 've 're 'll 'd 'm 't",
    ]
    out = []
    while len(out) < length:
        pool = rng.choice(pools)
        out.append(rng.choice(pool) if rng.random() < 0.7 else chr(rng.randrange(0x20, 0x30000)))
    text = "".join(out)
    return "".join(ch for ch in text if not 0xD800 <= ord(ch) <= 0xDFFF)  # no lone surrogates


@pytest.fixture(scope="module")
def small_tokenizer(train_tokenizer):
    rng = random.Random(0)
    text = "".join(random_unicode(rng, 200) + "<|endoftext|>" for _ in range(200))
    return train_tokenizer(text + "the cat sat on the mat. " * 200)


def test_encode_matches_reference(small_tokenizer):
    rng = random.Random(1)
    for _ in range(200):
        text = random_unicode(rng, rng.randrange(0, 80))
        if rng.random() < 0.3:
            text += "<|endoftext|>" + random_unicode(rng, 10)
        assert small_tokenizer.encode(text) == reference_encode(small_tokenizer, text)


def test_encode_matches_reference_on_real_text(real_tokenizer, real_text_slices):
    tokenizer, _ = real_tokenizer
    text = real_text_slices["held_out"].read_text(encoding="utf-8")[:20_000]
    assert tokenizer.encode(text) == reference_encode(tokenizer, text)


def test_round_trip_random_unicode(small_tokenizer):
    rng = random.Random(2)
    for _ in range(3000):
        text = random_unicode(rng, rng.randrange(0, 60))
        assert small_tokenizer.decode(small_tokenizer.encode(text)) == text


def test_round_trip_edge_strings(small_tokenizer):
    for text in ["", "\r", "\x00", "\r\n\r", " ", "  \n  ", "e\u0301", "🇫🇷", "<|endoftext|>"]:
        assert small_tokenizer.decode(small_tokenizer.encode(text)) == text


def test_invalid_utf8_decodes_to_replacement_character():
    tokenizer = Tokenizer({i: bytes([i]) for i in range(256)}, [])
    assert tokenizer.decode([0xE2, 0x82]) == "\ufffd"
    assert tokenizer.decode([104, 0xFF, 105]) == "h\ufffdi"


def test_special_tokens_added_and_longest_wins():
    vocab = {i: bytes([i]) for i in range(256)}
    double = "<|endoftext|><|endoftext|>"
    tokenizer = Tokenizer(vocab, [], ["<|endoftext|>", double])
    single_id, double_id = tokenizer.special_ids["<|endoftext|>"], tokenizer.special_ids[double]
    assert {single_id, double_id} == {256, 257} and tokenizer.vocab_size == 258
    ids = tokenizer.encode("a<|endoftext|><|endoftext|><|endoftext|>b")
    assert ids == [97, double_id, single_id, 98]
    assert tokenizer.decode(ids) == "a<|endoftext|><|endoftext|><|endoftext|>b"
    # Special tokens are never produced by BPE on ordinary text.
    assert tokenizer.encode_ordinary("<|endoftext|>") == list(b"<|endoftext|>")


def test_one_special_token_splits_like_the_regex():
    # With one special token, encode finds it with str.find instead of the regex; a
    # token that overlaps itself ("aa" in "aaaaa") must still be matched leftmost, as the
    # regex does.
    vocab = {i: bytes([i]) for i in range(256)}
    rng = random.Random(9)
    for special in ["aa", "<|endoftext|>", "aba"]:
        tokenizer = Tokenizer(vocab, [], [special])
        for _ in range(300):
            text = "".join(rng.choice(["a", "b", "aa", " ", special]) for _ in range(12))
            expected = [
                (m.start(), m.end(), m.group()) for m in tokenizer._special_re.finditer(text)
            ]
            assert list(tokenizer._special_spans(text)) == expected, text


def test_special_token_already_in_vocab_keeps_its_id():
    vocab = {i: bytes([i]) for i in range(256)} | {256: b"<|endoftext|>"}
    tokenizer = Tokenizer(vocab, [], ["<|endoftext|>"])
    assert tokenizer.special_ids["<|endoftext|>"] == 256 and tokenizer.vocab_size == 257


def test_encode_iterable_equals_encode_for_any_chunking(small_tokenizer):
    rng = random.Random(3)
    text = "".join(
        random_unicode(rng, 50) + rng.choice(["<|endoftext|>", "\n", "\n\n", " "])
        for _ in range(400)
    )
    expected = small_tokenizer.encode(text)
    import bpe.tokenizer as module

    block = module._BLOCK_CHARS
    module._BLOCK_CHARS = 64  # force many blocks, each cut in random places
    try:
        for _ in range(20):
            cuts = sorted(rng.sample(range(len(text)), 300))
            chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
            assert list(small_tokenizer.encode_iterable(chunks)) == expected
        assert list(small_tokenizer.encode_iterable(io.StringIO(text))) == expected
    finally:
        module._BLOCK_CHARS = block


def test_encode_long_text_in_blocks(small_tokenizer):
    rng = random.Random(4)
    text = "".join(random_unicode(rng, 40) + "  \n\n " for _ in range(300))
    expected = small_tokenizer.encode(text)
    import bpe.tokenizer as module

    block = module._BLOCK_CHARS
    module._BLOCK_CHARS = 37
    try:
        assert small_tokenizer.encode(text) == expected
    finally:
        module._BLOCK_CHARS = block


def test_cache_cleared_at_its_limit_keeps_the_ids(small_tokenizer):
    # The pre-token cache is cleared once it holds more than _CACHE_LIMIT pre-tokens; codes
    # handed out before the reset must never be read against the new table.
    rng = random.Random(8)
    texts = ["".join(random_unicode(rng, 60) + " " for _ in range(40)) for _ in range(6)]
    texts += ["a<|endoftext|>b" + texts[0]]
    expected = [small_tokenizer.encode(text) for text in texts]
    import bpe.tokenizer as module

    fresh = Tokenizer(small_tokenizer.vocab, small_tokenizer.merges, ["<|endoftext|>"])
    limit = module._CACHE_LIMIT
    module._CACHE_LIMIT = 50
    try:
        assert [fresh.encode(text) for text in texts * 2] == expected * 2
        assert fresh._cache().held() <= 50  # it was cleared (the texts hold thousands)
    finally:
        module._CACHE_LIMIT = limit


def test_encode_file_equals_encode(real_tokenizer, real_text_slices, tmp_path):
    tokenizer, _ = real_tokenizer
    path = real_text_slices["held_out"]
    expected = tokenizer.encode(path.read_text(encoding="utf-8"))
    out = tmp_path / "ids.bin"
    count = tokenizer.encode_file(path, out, num_workers=2)
    ids = np.memmap(out, dtype=tokenizer.token_dtype, mode="r")
    assert tokenizer.token_dtype == np.uint16
    assert count == len(expected) and ids.tolist() == expected
    assert [p.name for p in tmp_path.iterdir()] == ["ids.bin"]  # no temporary left behind


def test_uint32_when_vocab_needs_it(tmp_path):
    vocab = {i: bytes([i]) for i in range(256)}
    tokenizer = Tokenizer(vocab, [], ["<|endoftext|>"])
    assert tokenizer.token_dtype == np.uint16
    vocab[70_000] = b"<big>"
    assert Tokenizer(vocab, []).token_dtype == np.uint32


def test_encode_file_never_cuts_inside_an_overlapping_special_token(tmp_path):
    vocab = {i: bytes([i]) for i in range(256)}
    double = "<|endoftext|><|endoftext|>"
    tokenizer = Tokenizer(vocab, [], ["<|endoftext|>", double])
    rng = random.Random(5)
    parts = []
    for _ in range(3000):
        parts.append(rng.choice(["a b", "hello\nworld", "x", "  \n"]))
        parts.append(rng.choice(["<|endoftext|>", double, double + "<|endoftext|>", "\n"]))
    text = "".join(parts)
    path = tmp_path / "text.txt"
    path.write_text(text, encoding="utf-8")
    import bpe.pretokenize as pretokenize

    expected = tokenizer.encode(text)
    for chunk_bytes in (7, 13, 64, 1000):  # cuts land everywhere, inside the pairs too
        cuts = pretokenize.find_chunk_boundaries(path, chunk_bytes, tokenizer.special_tokens)
        ids = []
        data = path.read_bytes()
        for start, end in pairwise(cuts):
            ids += tokenizer.encode(data[start:end].decode("utf-8"))
        assert ids == expected, chunk_bytes


# ---- the vectorized BPE (bpe.batch_bpe) against the per-pre-token loop and the reference ----


def batch_of(tokenizer: Tokenizer) -> BatchBPE:
    assert applies_to(tokenizer._ranks, tokenizer._merged)
    return BatchBPE(tokenizer._ranks, tokenizer._merged, tokenizer._byte_ids)


def test_batch_equals_loop_on_random_and_repetitive_pieces(tmp_path):
    rng = random.Random(5)
    # Runs of one character train merges like (a, a) and (aa, aa): the overlap rule matters.
    runs = "".join(ch * rng.randrange(1, 40) + " " for ch in "a=-.!0 xyzé😀" * 20)
    text = runs + "".join(random_unicode(rng, 100) for _ in range(100))
    path = tmp_path / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    vocab, merges = train_bpe(path, 700, [], num_workers=1)
    tokenizer = Tokenizer(vocab, merges)
    pieces = sorted(set(regex.findall(GPT2_PATTERN, text)))
    pieces += ["a" * n for n in range(1, 70)] + ["=" * n for n in range(1, 70)]
    encoded = batch_of(tokenizer).encode([p.encode("utf-8") for p in pieces])
    assert encoded == [list(tokenizer._encode_piece(p)) for p in pieces]


def test_batch_equals_loop_on_real_text(real_tokenizer, real_text_slices):
    tokenizer, _ = real_tokenizer
    text = real_text_slices["held_out"].read_text(encoding="utf-8")[:300_000]
    pieces = sorted(set(regex.findall(GPT2_PATTERN, text)))
    assert len(pieces) > 5_000
    encoded = batch_of(tokenizer).encode([p.encode("utf-8") for p in pieces])
    assert encoded == [list(tokenizer._encode_piece(p)) for p in pieces]


def loop_encode(tokenizer: Tokenizer, text: str) -> list[int]:
    """The per-pre-token loop alone (itself checked against reference_encode above)."""
    return [i for word in regex.findall(GPT2_PATTERN, text) for i in tokenizer._encode_piece(word)]


def test_many_new_pretokens_at_once_match_the_loop(real_tokenizer, real_text_slices):
    _, directory = real_tokenizer
    fresh = Tokenizer.load(directory)  # cold cache: the first call takes the batch path
    text = real_text_slices["held_out"].read_text(encoding="utf-8")[:100_000]
    assert len(set(regex.findall(GPT2_PATTERN, text))) > 1024
    assert fresh._batch_bpe is None
    assert fresh.encode_ordinary(text) == loop_encode(fresh, text)
    assert isinstance(fresh._batch_bpe, BatchBPE)


def test_merge_order_that_breaks_batching_falls_back_to_the_loop():
    # (ab, a) ranks before (a, b), which makes ab: in "abab" the loop gives [aba, b] while
    # merging every (a, b) at once would give [ab, ab]. applies_to sees it and encode keeps
    # the loop. (Merges learned by training never come in such an order.)
    vocab = {i: bytes([i]) for i in range(256)}
    vocab[256], vocab[257] = b"ab", b"aba"
    merges = [(b"ab", b"a"), (b"a", b"b")]
    tokenizer = Tokenizer(vocab, merges)
    assert not applies_to(tokenizer._ranks, tokenizer._merged)
    text = "".join(" ab" + "ab" * (n % 50) + "x" * n for n in range(1500))  # > 1024 new
    assert tokenizer.encode(text) == loop_encode(tokenizer, text)
    assert tokenizer._batch_bpe is False
    assert tokenizer.encode("abab") == [257, ord("b")]


def test_threads_sharing_a_tokenizer_get_the_same_ids(real_tokenizer, real_text_slices):
    # While a call is under way the cache holds codes whose ids are not computed yet; each
    # thread has its own cache, so no thread can read another's pending codes.
    _, directory = real_tokenizer
    text = real_text_slices["held_out"].read_text(encoding="utf-8")[:200_000]
    parts = [text[i * 25_000 : (i + 2) * 25_000] for i in range(7)]
    serial = Tokenizer.load(directory)
    expected = [serial.encode(part) for part in parts]
    shared = Tokenizer.load(directory)
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(shared.encode, parts * 3)) == expected * 3
    copy = pickle.loads(pickle.dumps(shared))
    assert copy.encode(parts[0]) == expected[0]
