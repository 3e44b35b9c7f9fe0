import io
import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from trainer import (
    Checkpointer,
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    snapshot_checkpoint,
)
from trainer import checkpoint as checkpoint_module

sys.path.insert(0, str(Path(__file__).parent))
from trainer_testutil import TinyLM


def trained_pair(seed=0, steps=3):
    """A model and an AdamW optimizer with real (non-empty) state."""
    torch.manual_seed(seed)
    model = TinyLM()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    for _ in range(steps):
        ids = torch.randint(0, 64, (2, 8))
        loss = model(ids).logsumexp(-1).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model, optimizer


def assert_state_equal(a, b):
    """Deep equality of (nested) optimizer state dicts, tensors compared exactly."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_state_equal(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_state_equal(x, y)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    else:
        assert a == b


@pytest.mark.parametrize("via", ["path", "bytesio"])
def test_round_trip(tmp_path, via):
    model, optimizer = trained_pair()
    target = tmp_path / "c.safetensors" if via == "path" else io.BytesIO()
    save_checkpoint(model, optimizer, 17, target)
    if via == "bytesio":
        target.seek(0)
    fresh_model, fresh_optimizer = trained_pair(seed=1, steps=0)
    assert load_checkpoint(target, fresh_model, fresh_optimizer) == 17
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh_model.state_dict().items()):
        assert torch.equal(a, b), name
    assert_state_equal(optimizer.state_dict(), fresh_optimizer.state_dict())
    # The restored optimizer continues exactly like the original.
    ids = torch.randint(0, 64, (2, 8))
    for m, o in ((model, optimizer), (fresh_model, fresh_optimizer)):
        m(ids).logsumexp(-1).mean().backward()
        o.step()
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), fresh_model.parameters()))


def test_file_object_and_no_pickle(tmp_path):
    model, optimizer = trained_pair()
    path = tmp_path / "c.safetensors"
    with open(path, "wb") as f:
        save_checkpoint(model, optimizer, 3, f)
    with open(path, "rb") as f:
        assert load_checkpoint(f, TinyLM(), None) == 3
    assert path.read_bytes()[:8] != b"\x80\x02\x8a\nl\xfc\x9cF"  # not a torch.save pickle


def test_compiled_and_ddp_wrappers_are_stripped(tmp_path):
    model, optimizer = trained_pair()
    compiled = torch.compile(model)  # lazy: nothing compiles until it is called
    assert any("_orig_mod." in k for k in compiled.state_dict())
    save_checkpoint(compiled, optimizer, 1, tmp_path / "c.safetensors")
    ckpt = read_checkpoint(tmp_path / "c.safetensors")
    assert set(ckpt.model) == set(model.state_dict())
    load_checkpoint(tmp_path / "c.safetensors", torch.compile(TinyLM()), None)  # and back

    import torch.distributed as dist

    dist.init_process_group(
        "gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1
    )
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model)
        save_checkpoint(wrapped, optimizer, 2, tmp_path / "d.safetensors")
        assert set(read_checkpoint(tmp_path / "d.safetensors").model) == set(model.state_dict())
    finally:
        dist.destroy_process_group()


def test_tied_weights_are_stored_once(tmp_path):
    model = TinyLM(d=64)  # head (64 x 64) and embedding (64 x 64) can share one matrix
    model.head.weight = model.embed.weight
    save_checkpoint(model, None, 0, tmp_path / "c.safetensors")
    fresh = TinyLM(d=64)
    fresh.head.weight = fresh.embed.weight
    load_checkpoint(tmp_path / "c.safetensors", fresh)
    assert torch.equal(fresh.head.weight, model.embed.weight)
    assert fresh.head.weight is fresh.embed.weight


def test_crash_between_write_and_rename_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    model, optimizer = trained_pair()
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint(model, optimizer, 1, path)
    before = path.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(model, optimizer, 2, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load_checkpoint(path, TinyLM(), None) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors"]


def test_checkpointer_ignores_half_written_files_and_keeps_last_n(tmp_path):
    model, optimizer = trained_pair()
    checkpointer = Checkpointer(tmp_path, keep=2)
    for step in (5, 10, 15):
        save_checkpoint(model, optimizer, step, checkpointer.path_for(step))
        checkpointer.prune()
    # What a SIGKILL mid-write leaves behind: a temporary file with part of a checkpoint.
    (tmp_path / ".step_00000020.safetensors.abc.tmp").write_bytes(b"partial")
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
    assert names == ["step_00000010.safetensors", "step_00000015.safetensors"]
    assert latest_checkpoint(tmp_path) == tmp_path / "step_00000015.safetensors"


def test_truncated_and_corrupt_files_fail_clearly(tmp_path):
    model, optimizer = trained_pair()
    good = tmp_path / "good.safetensors"
    save_checkpoint(model, optimizer, 1, good)
    payload = good.read_bytes()
    cases = {
        "empty": b"",
        "short": payload[:5],
        "truncated_header": payload[:40],
        "truncated_tensors": payload[:-10],
        "garbage_header": payload[:8] + b"\xff" * 50 + payload[58:],
        "huge_header_length": (10**15).to_bytes(8, "little") + payload[8:],
        "trailing_garbage": payload + b"xx",
    }
    for name, data in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(CheckpointError, match=name + r"\.safetensors"):
            load_checkpoint(path, TinyLM(), None)
        with pytest.raises(CheckpointError):
            load_checkpoint(io.BytesIO(data), TinyLM(), None)
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_checkpoint(tmp_path / "nothere.safetensors", TinyLM())


def test_foreign_safetensors_file_is_not_a_checkpoint(tmp_path):
    save_file({"w": torch.zeros(2)}, tmp_path / "weights.safetensors")
    with pytest.raises(CheckpointError, match="not a trainer checkpoint"):
        load_checkpoint(tmp_path / "weights.safetensors", TinyLM())


def test_mismatched_model_or_optimizer_fails_clearly(tmp_path):
    model, optimizer = trained_pair()
    path = tmp_path / "c.safetensors"
    save_checkpoint(model, optimizer, 1, path)
    with pytest.raises(CheckpointError, match=r"wrong shapes.*embed\.weight"):
        load_checkpoint(path, TinyLM(d=32))
    with pytest.raises(CheckpointError, match=r"missing.*layers\.2"):
        load_checkpoint(path, TinyLM(n_layers=3))
    with pytest.raises(CheckpointError, match="unexpected"):
        load_checkpoint(path, TinyLM(n_layers=1))
    other = TinyLM()
    wrong_optimizer = torch.optim.AdamW(list(other.parameters())[:2])
    with pytest.raises(CheckpointError, match="param groups"):
        load_checkpoint(path, other, wrong_optimizer)
    save_checkpoint(model, None, 1, tmp_path / "no_optim.safetensors")
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(tmp_path / "no_optim.safetensors", TinyLM(), optimizer)


def test_metadata_rejects_unstorable_values(tmp_path):
    model, _ = trained_pair(steps=0)
    with pytest.raises(TypeError, match="cannot store a object"):
        save_checkpoint(model, None, 0, io.BytesIO(), extra={"bad": object()})
    with pytest.raises(ValueError, match="iteration"):
        save_checkpoint(model, None, -1, io.BytesIO())
    assert checkpoint_module.from_json(checkpoint_module.to_json({"b": (1, (2.0, None))})) == {
        "b": (1, (2.0, None))
    }


def test_background_write_is_a_private_snapshot(tmp_path):
    model, optimizer = trained_pair()
    checkpointer = Checkpointer(tmp_path, keep=1, background=True)
    expected = {k: v.clone() for k, v in model.state_dict().items()}
    path = checkpointer.write(7, *snapshot_checkpoint(model, optimizer, 7))
    with torch.no_grad():  # training goes on while the file is written
        for p in model.parameters():
            p.add_(1.0)
    checkpointer.wait()
    ckpt = read_checkpoint(path)
    assert ckpt.iteration == 7
    assert all(torch.equal(ckpt.model[k], v) for k, v in expected.items())


def test_background_write_errors_surface_on_wait(tmp_path):
    model, _ = trained_pair(steps=0)
    (tmp_path / "file").write_text("not a directory")
    checkpointer = Checkpointer(tmp_path / "file" / "sub", background=True)
    checkpointer.write(1, *snapshot_checkpoint(model, None, 1))
    with pytest.raises(RuntimeError, match="writing a checkpoint"):
        checkpointer.wait()


def test_streamed_safetensors_is_read_by_the_reference_library(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from trainer.checkpoint import write_safetensors

    torch.manual_seed(0)
    tensors = {
        "bf16": torch.randn(3, 5).to(torch.bfloat16),
        "f32": torch.randn(7),
        "f16": torch.randn(2, 2).half(),
        "i64": torch.arange(5),
        "flag": torch.tensor([True, False, True]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 4),
        "u8": torch.arange(9, dtype=torch.uint8),
    }
    path = tmp_path / "t.safetensors"
    with open(path, "wb") as f:
        write_safetensors(f, tensors, {"note": "hi"})
    loaded = load_file(path)
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name
    with safe_open(path, "pt") as f:  # memory-mapped reader: offsets and alignment hold
        assert f.metadata() == {"note": "hi"}
        assert torch.equal(f.get_tensor("bf16"), tensors["bf16"])
    with pytest.raises(TypeError, match="complex"):
        write_safetensors(io.BytesIO(), {"c": torch.zeros(2, dtype=torch.complex64)}, {})
