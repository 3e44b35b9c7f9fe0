"""Kill a real training process with SIGKILL mid-run, resume it, and compare bit for bit."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from trainer import latest_checkpoint, read_metrics

sys.path.insert(0, str(Path(__file__).parent))
import trainer_testutil

SCRIPT = Path(__file__).parent / "trainer_testutil.py"
COMPARED = ("step", "tokens", "lr", "train_loss", "grad_norm", "val_loss")


def run_script(out, *args):
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )


def comparable(records):
    return [{k: r[k] for k in COMPARED if k in r} for r in records]


def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path):
    steps = "60"
    threads = torch.get_num_threads()
    try:  # the reference runs in this process; the victim and its resumption do not
        trainer_testutil.main(["--out", str(tmp_path / "uninterrupted"), "--steps", steps])
    finally:
        torch.set_num_threads(threads)
    reference = read_metrics(tmp_path / "uninterrupted" / "metrics.jsonl")

    victim_dir = tmp_path / "killed"
    victim = subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--out",
            str(victim_dir),
            "--steps",
            steps,
            "--sleep",
            "0.05",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    metrics = victim_dir / "metrics.jsonl"
    deadline = time.monotonic() + 60
    try:
        # Kill once it is past its second checkpoint (step 10) but far from done, with steps
        # logged after its latest checkpoint (steps the resumed run must redo).
        while time.monotonic() < deadline and victim.poll() is None:
            records = read_metrics(metrics) if metrics.exists() else []
            logged = max((r["step"] for r in records), default=0)
            latest = latest_checkpoint(victim_dir / "checkpoints")
            saved = int(latest.stem.split("_")[1]) if latest else 0
            # (checkpoints every 5 steps: only one or two steps past one, so that the next is
            # at least three steps away; on a loaded 2-core machine the run once got two steps
            # further, to its step-15 checkpoint, between this check and the kill)
            if logged >= 11 and logged > saved and logged % 5 in (1, 2):
                break
            time.sleep(0.01)
        assert victim.poll() is None, f"run ended before the kill: {victim.stderr.read()}"
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    killed_at = max(r["step"] for r in read_metrics(metrics))
    checkpoint = latest_checkpoint(victim_dir / "checkpoints")
    resumed_from = int(checkpoint.stem.split("_")[1])
    assert 10 <= resumed_from < killed_at < 60

    run_script(victim_dir, "--steps", steps, "--resume", "latest")
    resumed = read_metrics(metrics)
    # Same losses, grad norms, LRs and val losses at every step, bit for bit (exact float ==).
    assert comparable(resumed) == comparable(reference)
    assert len([r for r in resumed if "train_loss" in r]) == 60  # no step lost or repeated
    assert resumed[-1]["wall_s"] > 0
