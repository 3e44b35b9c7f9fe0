"""End to end: `apps/train` on a tiny config, in process, through its real command line.

tokenize -> train (with checkpoints) -> resume to more steps -> generate -> re-run the default
pipeline on the finished run; every artifact is opened and checked, not just looked for.
"""

import io
import json
import tomllib

import numpy as np
import pytest
from safetensors.torch import load_file

import bpe
from train_app import cli
from train_app.corpus import builtin_documents

TINY = """
[data]
source = "builtin"
max_bytes = 80_000

[tokenizer]
vocab_size = 384

[model]
context_length = 32
d_model = 32
num_layers = 2
num_heads = 2
d_ff = 96

[train]
max_steps = 40
batch_size = 16
eval_interval = 10
eval_batches = 4
log_interval = 5
checkpoint_interval = 20
keep_checkpoints = 2

[optim]
lr = 1e-2
min_lr = 1e-3
warmup_steps = 5

[system]
threads = 1  # a tiny model gains nothing from more, and a busy CI machine costs it dearly

[sample]
prompt = "The"
max_new_tokens = 24
"""


def run_cli(*argv):
    out = io.StringIO()
    code = cli.main(list(argv), out=out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    config = root / "tiny.toml"
    config.write_text(TINY)
    return root / "run", config


def test_tokenize_writes_a_loadable_tokenizer_and_token_files(run_dir):
    run, config = run_dir
    code, out = run_cli("tokenize", "--run", str(run), "--config", str(config))
    assert code == 0, out
    assert "tokenizer  byte-level BPE, 384 tokens" in out
    for name in ("vocab.json", "merges.txt", "special_tokens.json"):
        assert (run / "tokenizer" / name).is_file()
    tok = bpe.Tokenizer.load(run / "tokenizer")
    assert tok.vocab_size == 384 and tok.special_tokens == ["<|endoftext|>"]
    meta = json.loads((run / "data" / "meta.json").read_text())
    assert meta["dtype"] == "uint16" and meta["vocab_size"] == 384
    train = np.fromfile(run / "data" / "train.bin", dtype=np.uint16)
    val = np.fromfile(run / "data" / "val.bin", dtype=np.uint16)
    assert len(train) == meta["train_tokens"] > 10_000 and len(val) == meta["val_tokens"] > 500
    assert train.max() < 384
    # The ids decode back to the built-in corpus, documents separated by <|endoftext|>.
    first_doc = tok.decode(train.tolist()).split("<|endoftext|>")[0]
    assert first_doc in builtin_documents()
    assert not list((run / "data").glob("*.txt")), "text splits are removed once encoded"
    saved = tomllib.loads((run / "config.toml").read_text())
    assert saved["model"]["d_model"] == 32 and saved["data"]["max_bytes"] == 80_000


def test_train_checkpoints_metrics_and_falling_val_loss(run_dir):
    run, _ = run_dir
    code, out = run_cli("train", "--run", str(run))
    assert code == 0, out
    assert "from scratch to 40 steps" in out and "done       step 40" in out
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert checkpoints == ["step_00000020.safetensors", "step_00000040.safetensors"]
    weights = load_file(run / "checkpoints" / checkpoints[-1])
    assert weights["model.token_embeddings.weight"].shape == (384, 32)
    assert weights["model.layers.1.ffn.w2.weight"].shape == (32, 96)
    assert weights["model.lm_head.weight"].isfinite().all()

    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in records if "val_loss" in r]
    train_steps = [r["step"] for r in records if "train_loss" in r]
    assert train_steps == list(range(5, 41, 5))
    assert len(val) == 4 and val[-1] < val[0] - 0.5, val  # learning, on held-out text
    assert val[0] < np.log(384) + 0.5  # and starting near chance, not from a broken state
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_resume_continues_the_step_count(run_dir):
    run, _ = run_dir
    code, out = run_cli("resume", "--run", str(run), "--train.max_steps", "60")
    assert code == 0, out
    assert "from step 40 to 60 steps" in out and "resumed from" in out
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "train_loss" in r]
    assert steps == list(range(5, 61, 5))  # one record per step: continued, not restarted
    tokens = [r["tokens"] for r in records if "train_loss" in r]
    assert tokens[-1] == 60 * 16 * 32
    # keep_checkpoints = 2: the oldest is pruned.
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["step_00000040.safetensors", "step_00000060.safetensors"]
    assert tomllib.loads((run / "config.toml").read_text())["train"]["max_steps"] == 60


def test_generate_is_reproducible_and_appends_samples(run_dir):
    run, _ = run_dir
    args = ["generate", "--run", str(run), "--prompt", "The object", "--max-new-tokens", "16"]
    code, out = run_cli(*args, "--temperature", "0")
    assert code == 0, out
    assert out.startswith("The object") and len(out) > len("The object") + 5
    _, out2 = run_cli(*args, "--temperature", "0")
    assert out2 == out  # greedy decoding is deterministic
    code3, out3 = run_cli(*args, "--temperature", "1.0", "--top-p", "0.9", "--seed", "3")
    assert code3 == 0 and out3.startswith("The object")
    samples = (run / "samples.txt").read_text()
    assert samples.count("=== step 60") == 3


def test_rerunning_the_pipeline_on_a_finished_run_resumes_instead_of_restarting(run_dir):
    run, _ = run_dir
    code, out = run_cli("--run", str(run))
    assert code == 0, out
    assert "tokens     already in" in out
    assert "already at step 60 of train.max_steps=60" in out
    assert "sample     " in out and "written    " in out
    assert len(list((run / "checkpoints").iterdir())) == 2
