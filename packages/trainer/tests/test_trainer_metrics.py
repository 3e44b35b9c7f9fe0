import io
import json

from trainer import MetricsLogger, read_metrics
from trainer.metrics import ProgressBar


def record(step, loss):
    return {
        "step": step,
        "tokens": 100 * step,
        "lr": 1e-3,
        "train_loss": loss,
        "grad_norm": 0.5,
        "tokens_per_s": 12_345.0,
        "mfu": 0.2,
        "wall_s": 1.5 * step,
    }


def test_console_lines_and_jsonl(tmp_path):
    console = io.StringIO()
    logger = MetricsLogger(tmp_path, total_steps=10, console=console, progress_bar=False)
    logger.start(resumed_step=0)
    logger.log(record(1, 4.25))
    logger.log({"step": 1, "tokens": 100, "val_loss": 4.5, "wall_s": 2.0})
    logger.close()
    lines = console.getvalue().splitlines()
    assert lines[0] == (
        "step      1 | loss 4.2500 | lr 1.00e-03 | gnorm 0.500 | 12.3k tok/s | mfu 20.0% | 1.5s"
    )
    assert lines[1] == "step      1 | val loss 4.5000 | 2.0s"
    assert read_metrics(tmp_path / "metrics.jsonl")[0] == record(1, 4.25)


def test_resume_drops_records_past_the_checkpoint_and_torn_lines(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(record(s, 1.0)) + "\n" for s in range(1, 8)) + '{"step": 8')
    logger = MetricsLogger(tmp_path, total_steps=10, console=None, progress_bar=False)
    logger.start(resumed_step=5)
    logger.log(record(6, 2.0))
    logger.close()
    assert [(r["step"], r["train_loss"]) for r in read_metrics(path)] == [
        (1, 1.0),
        (2, 1.0),
        (3, 1.0),
        (4, 1.0),
        (5, 1.0),
        (6, 2.0),
    ]


def test_progress_bar_draws_in_place_with_eta():
    stream = io.StringIO()
    bar = ProgressBar(total=200, stream=stream, width=10)
    bar.update(50, "loss 3.0")
    bar.update(100, "loss 2.0")
    text = stream.getvalue()
    assert text.startswith("\r[") and text.count("\r") == 2  # redrawn, not scrolled
    assert "[█████·····]  50.0% 100/200 ETA " in text and "loss 2.0" in text
    assert "ETA --:--" in text.split("\r")[1]  # no rate yet after the first update
