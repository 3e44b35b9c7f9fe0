"""Corpus reading and the train/validation split."""

import pytest

from train_app import corpus
from train_app.errors import UserError

SEP = corpus.DOC_SEPARATOR


def test_builtin_corpus_is_pythons_documentation():
    docs = corpus.builtin_documents()
    assert len(docs) > 50
    assert 300_000 < sum(len(d) for d in docs) < 2_000_000
    assert any("assert" in d for d in docs)


def test_documents_are_split_on_the_separator_across_read_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "_READ_CHUNK", 7)  # separators straddle chunk edges
    path = tmp_path / "c.txt"
    path.write_text(f"first doc{SEP}\nsecond  doc\n{SEP}{SEP}  \nthird", encoding="utf-8")
    assert list(corpus.documents([path])) == ["first doc", "second  doc", "third"]


def test_directory_of_txt_files(tmp_path):
    (tmp_path / "b.txt").write_text("bee")
    (tmp_path / "a.txt").write_text("ay")
    (tmp_path / "skip.md").write_text("no")
    files = corpus.text_files(tmp_path)
    assert [f.name for f in files] == ["a.txt", "b.txt"]
    assert list(corpus.documents(files)) == ["ay", "bee"]


def test_bad_data_paths_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        corpus.text_files(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(UserError, match="is empty"):
        corpus.text_files(tmp_path / "empty.txt")
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match=r"holds no \.txt files"):
        corpus.text_files(tmp_path / "d")
    (tmp_path / "bin.txt").write_bytes(b"ok \xff\xfe bad")
    with pytest.raises(UserError, match="not UTF-8"):
        list(corpus.documents([tmp_path / "bin.txt"]))


def test_split_holds_out_whole_documents_deterministically(tmp_path):
    docs = [f"document number {i}. " * 5 + "End." for i in range(200)]
    stats = corpus.write_splits(docs, tmp_path / "t.txt", tmp_path / "v.txt", 0.1)
    train = (tmp_path / "t.txt").read_text().split(SEP)[:-1]
    val = (tmp_path / "v.txt").read_text().split(SEP)[:-1]
    assert sorted(train + val) == sorted(docs)  # nothing lost or split
    assert not set(train) & set(val)
    assert stats.train_docs + stats.val_docs == 200
    assert 0.08 < stats.val_bytes / (stats.train_bytes + stats.val_bytes) < 0.12
    stats2 = corpus.write_splits(docs, tmp_path / "t2.txt", tmp_path / "v2.txt", 0.1)
    assert (tmp_path / "v2.txt").read_text() == (tmp_path / "v.txt").read_text()
    assert stats2 == stats
    assert not list(tmp_path.glob("*.tmp"))


def test_single_document_holds_out_its_tail(tmp_path):
    text = " ".join(f"word{i}" for i in range(1000))
    stats = corpus.write_splits([text], tmp_path / "t.txt", tmp_path / "v.txt", 0.2)
    train = (tmp_path / "t.txt").read_text().removesuffix(SEP)
    val = (tmp_path / "v.txt").read_text().removesuffix(SEP)
    assert train.startswith("word0 ") and val.endswith("word999")
    assert train + " " + val == text
    assert 0.15 < stats.val_bytes / (stats.train_bytes + stats.val_bytes) < 0.25


def test_max_bytes_caps_the_text_read(tmp_path):
    docs = ["x" * 1000] * 100
    stats = corpus.write_splits(docs, tmp_path / "t.txt", tmp_path / "v.txt", 0.1, 50_000)
    assert stats.train_docs + stats.val_docs == 50
