"""The errors a user meets: one clear line on stderr, no traceback, a non-zero exit, nothing lost.
Plus Ctrl-C (stop after the step, save, exit 130), `--debug`, `info` and `--data`."""

import io
import json
import os
import signal
import threading
import time

import pytest
import torch

import trainer
from train_app import cli
from train_app.errors import UserError

TINY = """
[data]
max_bytes = 60_000
[tokenizer]
vocab_size = 300
[model]
context_length = 16
d_model = 16
num_layers = 1
num_heads = 2
d_ff = 32
[train]
max_steps = 10
batch_size = 8
eval_interval = 5
eval_batches = 2
log_interval = 1
[system]
threads = 1
[sample]
max_new_tokens = 8
"""


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return str(path)


def run_cli(*argv):
    out = io.StringIO()
    return cli.main(list(argv), out=out), out.getvalue()


def assert_one_clear_error(capsys, code, expected_code, *fragments):
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_missing_and_empty_data(tmp_path, capsys):
    code, _ = run_cli("tokenize", "--run", str(tmp_path / "r"), "--data", str(tmp_path / "no.txt"))
    assert_one_clear_error(capsys, code, 2, "data path", "no.txt does not exist")
    (tmp_path / "empty.txt").write_text("")
    code, _ = run_cli(
        "tokenize", "--run", str(tmp_path / "r2"), "--data", str(tmp_path / "empty.txt")
    )
    assert_one_clear_error(capsys, code, 2, "empty.txt is empty")


def test_corpus_smaller_than_a_context_window_keeps_what_it_made(tmp_path, capsys):
    data = tmp_path / "small.txt"
    data.write_text("A very short corpus. " * 8)
    run = tmp_path / "r"
    code, _ = run_cli("--run", str(run), "--data", str(data), "--tokenizer.vocab_size", "260")
    assert_one_clear_error(
        capsys, code, 2, "smaller than one context window", "--model.context_length"
    )
    assert (run / "data" / "train.bin").exists() and (run / "tokenizer" / "vocab.json").exists()


def test_unknown_key_and_option_suggest_the_closest(capsys):
    code, _ = run_cli("info", "--model.dmodel", "3")
    assert_one_clear_error(capsys, code, 2, "'model.dmodel'", "did you mean 'model.d_model'")
    code, _ = run_cli("info", "--lr", "3")
    assert_one_clear_error(capsys, code, 2, "unknown option --lr", "--optim.lr")
    code, _ = run_cli("info", "--config", "tinystory-17m")
    assert_one_clear_error(capsys, code, 2, "did you mean 'tinystories-17m'")
    code, _ = run_cli("info", "--model.d_model", "big")
    assert_one_clear_error(capsys, code, 2, "--model.d_model wants int")


def test_incompatible_run_directory(tmp_path, tiny, capsys):
    run = str(tmp_path / "r")
    code, _ = run_cli("tokenize", "--run", run, "--config", tiny)
    assert code == 0
    code, _ = run_cli("train", "--run", run, "--model.d_model", "32")
    assert_one_clear_error(capsys, code, 2, "different config", "model.d_model: 16 in the run")
    code, _ = run_cli("generate", "--run", str(tmp_path / "nowhere"))
    assert_one_clear_error(capsys, code, 2, "not a run directory")
    code, _ = run_cli("generate", "--run", run)
    assert_one_clear_error(capsys, code, 2, "no checkpoint yet")


def test_out_of_memory_names_the_knob(tmp_path, tiny, capsys, monkeypatch):
    def fit(self):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer.Trainer, "fit", fit)
    code, _ = run_cli("--run", str(tmp_path / "r"), "--config", tiny)
    assert_one_clear_error(capsys, code, 3, "out of GPU memory", "--train.grad_accum_steps 2")


def test_debug_shows_the_exception(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        cli.main(["tokenize", "--debug", "--run", str(tmp_path / "r"), "--data", "nope.txt"])


def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, tiny, capsys):
    run = tmp_path / "r"
    assert run_cli("tokenize", "--run", str(run), "--config", tiny)[0] == 0
    metrics = run / "metrics.jsonl"

    def press_ctrl_c_once_training_runs():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if metrics.exists() and metrics.read_text().count("\n") >= 3:
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.01)

    threading.Thread(target=press_ctrl_c_once_training_runs, daemon=True).start()
    code, out = run_cli("train", "--run", str(run), "--train.max_steps", "1000000")
    assert code == 130, out
    assert "Ctrl-C: finishing this step" in capsys.readouterr().err
    (ckpt,) = (run / "checkpoints").iterdir()
    step = trainer.read_checkpoint(ckpt).iteration
    assert 3 <= step < 1000 and ckpt.name == f"step_{step:08d}.safetensors"
    assert f"stopped    at step {step:,}" in out and "resume --run" in out
    last = json.loads(metrics.read_text().splitlines()[-1])
    assert last["step"] <= step
    assert (run / "loss.png").exists()


def test_pipeline_on_a_user_file_then_info(tmp_path, tiny):
    text = " ".join(f"Sentence number {i} is here, and it is plain." for i in range(600))
    data = tmp_path / "book.txt"
    data.write_text(text)
    run = tmp_path / "r"
    code, out = run_cli("--run", str(run), "--config", tiny, "--data", str(data))
    assert code == 0, out
    assert f"data       {data}" in out and "sample     " in out
    assert (run / "samples.txt").read_text().startswith("=== step 10")
    code, out = run_cli("info", "--run", str(run))
    assert code == 0
    assert "params     " in out and "run        " in out and "step 10" in out
    assert 'source = "' + str(data) + '"' in out
