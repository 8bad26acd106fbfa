"""Resumable training: a run stopped after a checkpoint and resumed ends exactly where an uninterrupted run ends.

On the tiny random Llama (tests/tiny_model.py). The stop lands mid-epoch, after the last checkpoint, with
dropout on and a learning rate high enough that Adam's moments matter: a resume that restarted the epoch's
data order, lost the optimizer, schedule or RNG state, or skipped the steps after the checkpoint, ends
elsewhere.
"""

import json

import pytest

from derivanim.errors import InvalidInput
from derivanim.model import adapter_info
from derivanim.train import TrainConfig, _write_folder, latest_checkpoint, length_grouped_batches, train

from tiny_model import corpus_rows

STEPS = 9  # 12 rows, micro-batches of 2, 2 per step: 3 steps per epoch, 3 epochs


@pytest.fixture(scope="module")
def config(tiny_model_dir):
    return TrainConfig(task="slots", base_model=tiny_model_dir, epochs=3, batch_size=2, grad_accum=2, lr=5e-3,
                       lora_dropout=0.1, max_length=256, log_every=1, checkpoint_every=2)


@pytest.fixture(scope="module")
def runs(config, tmp_path_factory):
    """(uninterrupted folder, resumed folder, the first part's log and the checkpoints it left)."""
    rows, val = corpus_rows(12), corpus_rows(2, split="val")
    straight = tmp_path_factory.mktemp("straight")
    train(config, rows, val, straight, progress=False)
    resumed = tmp_path_factory.mktemp("resumed")
    # Killed after step 5: the checkpoint of step 4 (epoch 2, one step into it) is where the resume starts.
    first_part = train(config, rows, val, resumed, stop_after=5, progress=False).log
    left = sorted(path.name for path in (resumed / "checkpoints").iterdir())
    train(config, rows, val, resumed, resume=True, progress=False)
    return straight, resumed, first_part, left


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "adapter_model.safetensors")


def test_a_resumed_run_ends_with_the_weights_and_losses_of_an_uninterrupted_one(runs):
    import torch

    straight, resumed, first_part, _left = runs
    assert [s["step"] for s in first_part["steps"]] == [1, 2, 3, 4, 5]
    logs = [json.loads((folder / "training_log.json").read_text()) for folder in (straight, resumed)]
    assert [s["step"] for s in logs[0]["steps"]] == list(range(1, STEPS + 1))
    losses = [[s["train_loss"] for s in log["steps"]] for log in logs]
    assert losses[1] == pytest.approx(losses[0], rel=1e-6, abs=1e-7)
    val_losses = [[e["val_loss"] for e in log["epochs"]] for log in logs]
    assert len(val_losses[0]) == 3 and val_losses[1] == pytest.approx(val_losses[0], rel=1e-6, abs=1e-7)
    weights = [_weights(folder) for folder in (straight, resumed)]
    assert weights[0].keys() == weights[1].keys() and weights[0]
    for name in weights[0]:
        assert torch.allclose(weights[0][name], weights[1][name], rtol=1e-5, atol=1e-7), name
    # The checks above can fail: training moved the weights far more than the tolerance.
    assert not all(torch.allclose(weights[0][name], _weights(straight / "epoch-1")[name], rtol=1e-5, atol=1e-7)
                   for name in weights[0])


def test_checkpoints_keep_the_latest_step_and_every_epoch_end(runs):
    straight, _resumed, _first_part, left = runs
    assert left == ["epoch-1", "step-000004"]  # step 2's was removed when step 4's was written
    # The last step checkpoint (8) is older than the last epoch's (9), so it is gone too.
    assert sorted(path.name for path in (straight / "checkpoints").iterdir()) == ["epoch-1", "epoch-2", "epoch-3"]
    assert latest_checkpoint(straight).name == "epoch-3"
    for epoch in (1, 2, 3):
        info = adapter_info(straight / f"epoch-{epoch}")  # a complete adapter folder, as derivanim eval loads it
        assert info["task"] == "slots" and info["epoch"] == epoch and info["steps"] == 3 * epoch
        assert (straight / f"epoch-{epoch}" / "adapter_model.safetensors").is_file()
    assert json.loads((straight / "train_config.json").read_text())["checkpoint_every"] == 2


def test_a_kill_while_writing_leaves_the_previous_checkpoint_whole(runs, tmp_path):
    import shutil

    straight, *_ = runs
    out = tmp_path / "run"
    shutil.copytree(straight / "checkpoints", out / "checkpoints")
    before = (out / "checkpoints" / "epoch-3" / "run.json").read_text()

    def killed(folder):
        (folder / "run.json").write_text('{"step": 99')  # half of a file, then the process dies
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _write_folder(out / "checkpoints" / "epoch-3", killed)
    assert latest_checkpoint(out).name == "epoch-3"
    assert (out / "checkpoints" / "epoch-3" / "run.json").read_text() == before


def test_resume_refuses_other_settings_and_a_fresh_run_refuses_a_folder_with_checkpoints(runs, config):
    straight, *_ = runs
    rows, val = corpus_rows(12), corpus_rows(2, split="val")
    with pytest.raises(InvalidInput, match=r"lr=0\.001 \(the run has 0\.005\)"):
        train(config, rows, val, straight, resume=True, lr=1e-3, progress=False)
    with pytest.raises(InvalidInput, match="other data"):
        train(config, corpus_rows(11), val, straight, resume=True, progress=False)
    with pytest.raises(InvalidInput, match="--resume"):
        train(config, rows, val, straight, progress=False)


def test_batches_group_similar_lengths_in_an_order_fixed_by_seed_and_epoch():
    import random

    lengths = [random.Random(i).randint(10, 1000) for i in range(200)]
    epoch_1 = length_grouped_batches(lengths, 4, seed=0, epoch=1)
    assert epoch_1 == length_grouped_batches(lengths, 4, seed=0, epoch=1)
    assert epoch_1 != length_grouped_batches(lengths, 4, seed=0, epoch=2)
    assert epoch_1 != length_grouped_batches(lengths, 4, seed=1, epoch=1)
    assert sorted(i for batch in epoch_1 for i in batch) == list(range(200))

    def padding(batches):
        return sum(max(lengths[i] for i in batch) * len(batch) - sum(lengths[i] for i in batch) for batch in batches)

    in_row_order = [list(range(i, i + 4)) for i in range(0, 200, 4)]
    assert padding(epoch_1) < padding(in_row_order) / 10


def test_an_adapter_is_retrained_from_its_saved_settings(runs, config, tmp_path):
    """--from-adapter DIR (and --config FILE) take every setting the adapter was trained with; options given win."""
    from derivanim import cli

    straight = runs[0]
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in corpus_rows(4)))
    out = tmp_path / "again"
    code = cli.main(["train", "--from-adapter", str(straight), "--train", str(data), "--val", str(data),
                     "--out", str(out), "--max-steps", "1", "--lr", "0.001"])
    assert code == 0
    saved = json.loads((straight / "train_config.json").read_text())
    again = json.loads((out / "train_config.json").read_text())
    assert again == {**saved, "max_steps": 1, "lr": 0.001}
    assert saved == {key: value for key, value in vars(config).items()}  # every setting is saved, not only options
    assert cli.main(["train", "--config", str(tmp_path / "none.json"), "--out", str(out)]) == 2
