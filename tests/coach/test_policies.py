"""Coach policies: the contract over every registered one, and each one's decisions on synthetic signals."""

from __future__ import annotations

import json
import math

import pytest

from attncoach.coach.coach import Coach, build_policies
from attncoach.coach.policies import POLICIES, Knobs
from attncoach.coach.policies.base import KNOBS
from attncoach.coach.signals import Signals
from attncoach.errors import AttncoachError
from attncoach.train.settings import load_run_config as load_config


def synthetic_run(steps: int = 400, seed: int = 0):
    """Step and evaluation signals with every field a policy reads, varied enough to trigger decisions."""
    import random

    rng = random.Random(seed)
    gap = 0.0
    for step in range(1, steps + 1):
        loss = 2.0 / math.sqrt(step) + rng.random() * 0.05
        if step in (150, 151):
            loss = float("nan")
        yield Signals(
            step=step,
            examples_seen=32 * step,
            loss=loss,
            loss_ema=2.0 / math.sqrt(step),
            grad_norm=1.0,
            nonfinite=not math.isfinite(loss),
            hypergradient=rng.uniform(-0.2, 0.8),
            noise_scale=40.0 + step,
            batch_size=32,
            update_ratio=1e-3,
        )
        if step % 25 == 0:
            gap += rng.uniform(-0.05, 0.08)
            yield Signals(
                step=step,
                evaluated=True,
                val_metric=min(0.7, 0.5 + step / 1000),
                val_loss=0.6 + gap,
                loss_ema=0.6,
                gap=gap,
                best_val_metric=0.7,
            )


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_keeps_the_contract(name):
    policy = POLICIES[name]()
    knobs = Knobs()
    signals = list(synthetic_run())
    decisions = []
    for i, sig in enumerate(signals):
        if i == len(signals) // 2:
            state = json.loads(json.dumps(policy.state_dict()))  # checkpointable as JSON
            twin_knobs = Knobs(**knobs.to_dict())
            twin = POLICIES[name]()
            twin.load_state_dict(state)
            rest = signals[i:]
            break
        decisions += policy.observe(sig, knobs)
    assert all(d.knob in KNOBS and d.policy == name and d.reason for d in decisions)
    json.dumps([d.to_dict() for d in decisions])  # loggable
    # a restored policy continues with exactly the same decisions
    ours = [d.to_dict() for sig in rest for d in policy.observe(sig, knobs)]
    theirs = [d.to_dict() for sig in rest for d in twin.observe(sig, twin_knobs)]
    assert ours == theirs and knobs == twin_knobs
    assert knobs.lr_scale > 0 and knobs.accumulation >= 1 and 0 <= knobs.dropout < 1 and knobs.weight_decay >= 0


def test_hypergradient_moves_the_lr_with_agreement_and_stays_in_bounds():
    policy = POLICIES["hypergradient_lr"](beta=0.1, min_scale=0.5, max_scale=2.0, log_change=0.2)
    knobs = Knobs()
    decisions = [d for step in range(1, 40) for d in policy.observe(Signals(step, hypergradient=1.0), knobs)]
    assert knobs.lr_scale == pytest.approx(2.0), "agreeing steps raise the LR up to its bound"
    assert decisions and all(d.knob == "lr_scale" and d.new > d.old for d in decisions)
    assert len(decisions) < 10, "only notable changes are logged"
    for step in range(40, 200):
        policy.observe(Signals(step, hypergradient=-1.0), knobs)
    assert knobs.lr_scale == pytest.approx(0.5), "steps that undo each other lower it, never below the bound"
    assert policy.observe(Signals(300, hypergradient=None), knobs) == []


def test_hypergradient_bounds_its_own_change_of_an_lr_chosen_before_it():
    policy = POLICIES["hypergradient_lr"](beta=0.1, min_scale=0.5, max_scale=2.0)
    knobs = Knobs(lr_scale=8.0)  # an LR probe chose 8x the configured LR
    for step in range(1, 100):
        policy.observe(Signals(step, hypergradient=1.0), knobs)
    assert knobs.lr_scale == pytest.approx(16.0)
    for step in range(100, 300):
        policy.observe(Signals(step, hypergradient=-1.0), knobs)
    assert knobs.lr_scale == pytest.approx(4.0)


def _probe_loss(multiple: float) -> float:
    """A range-test curve: falls as the LR grows towards 10x, blows up past 100x."""
    return 1.0 - 0.3 * min(1.0, math.log10(max(multiple, 1e-3)) / 3 + 2 / 3) + max(0.0, multiple - 100) * 0.5


def test_lr_probe_ramps_stops_at_the_blowup_and_restarts_at_a_tenth_of_the_minimum():
    policy = POLICIES["lr_probe"](steps=60, low=1e-2, high=1e3, smoothing=0.0)
    knobs, coach_steps, multiple = Knobs(), [], None
    coach = Coach([policy, POLICIES["divergence_guard"](warmup=0)], knobs)
    for step in range(1, 200):
        loss = 1.0 if multiple is None else _probe_loss(multiple)
        decisions = coach.observe(Signals(step, loss=loss, loss_ema=1.0, lr_schedule=0.5))
        coach_steps += decisions
        if any(d.knob == "rollback" for d in decisions):
            break
        multiple = knobs.lr_scale * 0.5  # the LR the step was taken with, over the configured one
        assert policy.exclusive, "the other policies wait while it probes"
    assert [d.policy for d in coach_steps] == ["lr_probe"] * 3, "the guard does not treat the ramp as a divergence"
    assert coach_steps[0].step == 1 and coach_steps[0].new == pytest.approx(1e-2 / 0.5), "the warmup is undone"
    finish = coach_steps[-1]
    assert "blew up" in finish.reason and finish.step < 60
    assert 0.5 <= knobs.lr_scale <= 2.0, f"a tenth of the ~10x minimum, got {knobs.lr_scale}"
    assert not policy.exclusive and policy.observe(Signals(300, loss=5.0), knobs) == []


def test_lr_probe_keeps_the_configured_lr_when_nothing_was_measured():
    policy = POLICIES["lr_probe"]()
    knobs = Knobs()
    decisions = policy.observe(Signals(1, loss=float("nan"), nonfinite=True), knobs)
    assert [d.knob for d in decisions] == ["rollback", "lr_scale"] and knobs.lr_scale == 1.0
    flat = POLICIES["lr_probe"](steps=20)
    knobs = Knobs()
    decisions = [d for step in range(1, 30) for d in flat.observe(Signals(step, loss=1.0 - 0.0005 * step), knobs)]
    assert "never fell" in decisions[-1].reason and knobs.lr_scale == 1.0, "a flat loss gives no reason to move"


def test_plateau_decays_then_restarts_then_stops():
    policy = POLICIES["plateau"](patience=2, factor=0.5, max_decays=2, restart=True)
    knobs = Knobs()
    evals = [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    decisions = [
        d for i, m in enumerate(evals) for d in policy.observe(Signals(i, evaluated=True, val_metric=m), knobs)
    ]
    assert [(d.knob, d.new) for d in decisions] == [
        ("lr_scale", 0.5),
        ("lr_scale", 0.25),
        ("lr_scale", 1.0),
        ("stop", True),
    ]
    assert "nothing left to try" in decisions[-1].reason
    assert policy.observe(Signals(0, evaluated=True, val_metric=0.5), Knobs()) == []


def test_batch_growth_follows_the_noise_scale_with_a_cooldown():
    policy = POLICIES["batch_growth"](factor=2, max_accumulation=4, threshold=1.0, cooldown=10)
    knobs = Knobs()
    grown = []
    for step in range(1, 60):
        for d in policy.observe(Signals(step, noise_scale=500.0, batch_size=32 * knobs.accumulation), knobs):
            grown.append((step, d.new))
    assert grown == [(10, 2), (20, 4)], "x2 after each cooldown, up to max_accumulation"
    quiet = POLICIES["batch_growth"](cooldown=1)
    assert quiet.observe(Signals(5, noise_scale=10.0, batch_size=32), Knobs()) == [], "noise below the batch"


def test_regularisation_follows_the_gap_within_bounds():
    policy = POLICIES["regularisation"](widen=0.02, dropout_step=0.1, dropout_max=0.3, weight_decay_max=0.04)
    knobs = Knobs(dropout=0.1, weight_decay=0.01)
    for step, gap in enumerate([0.0, 0.1, 0.2, 0.3, 0.4], 1):
        policy.observe(Signals(step, evaluated=True, gap=gap), knobs)
    assert knobs.dropout == 0.3 and knobs.weight_decay == 0.04, "a widening gap raises both, up to the bounds"
    decisions = policy.observe(Signals(9, evaluated=True, gap=0.1), knobs)
    assert {d.knob for d in decisions} == {"dropout", "weight_decay"}
    assert knobs.dropout == pytest.approx(0.2) and knobs.weight_decay == pytest.approx(0.02)
    assert policy.observe(Signals(10, evaluated=True, gap=0.11), knobs) == [], "a small change is no trend"


def test_divergence_guard_rolls_back_on_nan_and_spikes_then_gives_up():
    policy = POLICIES["divergence_guard"](spike_factor=3.0, lr_factor=0.5, warmup=5, max_rollbacks=2)
    knobs = Knobs()
    assert policy.observe(Signals(10, loss=1.0, loss_ema=1.0), knobs) == []
    nan = policy.observe(Signals(11, loss=float("nan"), loss_ema=1.0, nonfinite=True), knobs)
    assert [d.knob for d in nan] == ["rollback", "lr_scale"] and knobs.lr_scale == 0.5
    assert policy.observe(Signals(3, loss=10.0, loss_ema=1.0), knobs) == [], "no spike check during warmup"
    spike = policy.observe(Signals(12, loss=10.0, loss_ema=1.0), knobs)
    assert spike[0].knob == "rollback" and "above 3x" in spike[0].reason
    final = policy.observe(Signals(13, loss=float("inf"), loss_ema=1.0, nonfinite=True), knobs)
    assert [d.knob for d in final] == ["stop"]


def test_divergence_guard_counts_rollbacks_in_a_row_not_over_the_run():
    policy = POLICIES["divergence_guard"](lr_factor=0.5, warmup=0, recovery=10, max_rollbacks=2)
    knobs, step = Knobs(), 0
    for _ in range(5):  # five divergences, each followed by a stable period: the run goes on
        step += 1
        assert policy.observe(Signals(step, loss=float("nan"), nonfinite=True), knobs)[0].knob == "rollback"
        for _ in range(12):
            step += 1
            assert all(d.knob == "lr_scale" for d in policy.observe(Signals(step, loss=1.0, loss_ema=1.0), knobs))
    # three in a row with no stable period between them: the guard gives up
    knobs_seen = [policy.observe(Signals(step + i, loss=float("nan"), nonfinite=True), knobs)[0] for i in (1, 2, 3)]
    assert [d.knob for d in knobs_seen] == ["rollback", "rollback", "stop"]
    assert "2 rollbacks in a row did not help (8 in the run)" in knobs_seen[-1].reason


def test_divergence_guard_gives_the_lr_back_once_stable_and_gently_if_it_diverges_again():
    policy = POLICIES["divergence_guard"](lr_factor=0.5, warmup=0, recovery=10)
    knobs = Knobs()
    policy.observe(Signals(5, loss=float("nan"), nonfinite=True), knobs)
    policy.observe(Signals(6, loss=float("nan"), nonfinite=True), knobs)
    assert knobs.lr_scale == 0.25
    ups = [d for step in range(7, 20) for d in policy.observe(Signals(step, loss=1.0, loss_ema=1.0), knobs)]
    assert [(d.step, d.new) for d in ups] == [(16, 1.0)] and "in full" in ups[0].reason, "a passing cause"
    # diverging again right after the give-back: the LR itself is too high, it comes back gently
    policy.observe(Signals(20, loss=float("nan"), nonfinite=True), knobs)
    assert knobs.lr_scale == 0.5
    ups = [d for step in range(21, 60) for d in policy.observe(Signals(step, loss=1.0, loss_ema=1.0), knobs)]
    assert [(d.step, d.new) for d in ups] == [(30, 1.0)] and "one notch" in ups[0].reason
    policy.observe(Signals(70, loss=float("nan"), nonfinite=True), knobs)
    policy.observe(Signals(71, loss=float("nan"), nonfinite=True), knobs)
    ups = [d for step in range(72, 100) for d in policy.observe(Signals(step, loss=1.0, loss_ema=1.0), knobs)]
    assert [(d.step, d.new) for d in ups] == [(81, 0.5), (91, 1.0)], "one notch per stable period from then on"


def test_divergence_guard_probation_holds_the_run_to_the_state_before_the_divergence():
    policy = POLICIES["divergence_guard"](warmup=0, recovery=20, probation_factor=1.25, trend_factor=1.5)
    knobs = Knobs()
    assert policy.steady
    assert [d.knob for d in policy.observe(Signals(10, loss=9.0, loss_ema=1.0), knobs)] == ["rollback", "lr_scale"]
    assert not policy.steady, "no snapshot while on probation"
    # the restored average is 0.71; losses settle at 1.1: under 1.5x the (rising) average,
    # but above 1.25x the state rolled back to -> roll back again
    step, again = 10, []
    while not again and step < 30:
        step += 1
        again = policy.observe(Signals(step, loss=1.1, loss_ema=0.6 + 0.01 * step), knobs)
    assert again and again[0].knob == "rollback" and "1.25x the 0.71" in again[0].reason
    assert knobs.lr_scale == 0.25
    calm = [d for step in range(31, 60) for d in policy.observe(Signals(step, loss=0.8, loss_ema=0.8), knobs)]
    assert not [d for d in calm if d.knob == "rollback"] and policy.steady, "probation ends after 20 calm steps"


def test_divergence_guard_takes_no_probation_reference_across_a_change_of_regularisation():
    # more dropout raises the training loss: the restored state's average, measured under the
    # old dropout, is no reference for the losses that follow (the spike and trend checks stay)
    policy = POLICIES["divergence_guard"](warmup=0, recovery=20, probation_factor=1.25, snapshot_every=10)
    knobs = Knobs(dropout=0.25)
    for step in range(1, 10):
        policy.observe(Signals(step, loss=1.0, loss_ema=1.0), knobs)
    assert [d.knob for d in policy.observe(Signals(10, loss=9.0, loss_ema=1.0), knobs)] == ["rollback", "lr_scale"]
    policy.observe(Signals(11, loss=1.0, loss_ema=1.0), knobs)  # the reference: 1.0
    knobs.dropout = 0.3  # the regularisation policy, at an evaluation on probation
    later = [d for step in range(12, 40) for d in policy.observe(Signals(step, loss=1.3, loss_ema=1.2), knobs)]
    assert [d.knob for d in later] == ["lr_scale"] and later[0].new == 1.0 and policy.steady, (
        "1.3 is above 1.25x the old reference, but the loss level moved: no rollback, the LR comes back"
    )
    # the next probation, with no change of regularisation near it, holds the run to its reference again
    assert [d.knob for d in policy.observe(Signals(100, loss=9.0, loss_ema=1.2), knobs)] == ["rollback", "lr_scale"]
    again = [d for step in range(101, 120) for d in policy.observe(Signals(step, loss=1.6, loss_ema=1.2), knobs)]
    assert again and again[0].knob == "rollback" and "1.25x the 1.2" in again[0].reason


def test_divergence_guard_takes_no_reference_from_a_snapshot_that_may_predate_a_change():
    policy = POLICIES["divergence_guard"](warmup=0, recovery=20, probation_factor=1.25, snapshot_every=10)
    knobs = Knobs(weight_decay=0.01)
    for step in range(1, 30):
        if step == 25:
            knobs.weight_decay = 0.02
        policy.observe(Signals(step, loss=1.0, loss_ema=1.0), knobs)
    assert [d.knob for d in policy.observe(Signals(30, loss=9.0, loss_ema=1.0), knobs)] == ["rollback", "lr_scale"]
    later = [d for step in range(31, 60) for d in policy.observe(Signals(step, loss=1.3, loss_ema=1.0), knobs)]
    assert "rollback" not in [d.knob for d in later], "the snapshot is from before step 25, under the old weight decay"


def _drift_to_guessing(policy, chance):
    """120 healthy steps at loss 0.8, then losses at the loss of guessing while the average follows slowly."""
    knobs, ema = Knobs(), 0.8
    for step in range(1, 121):
        assert policy.observe(Signals(step, loss=0.8, loss_ema=0.8, chance_loss=chance), knobs) == []
    for step in range(121, 160):
        ema = 0.98 * ema + 0.02 * 1.08
        decisions = policy.observe(Signals(step, loss=1.08, loss_ema=ema, chance_loss=chance), knobs)
        if decisions:
            return decisions
    return []


def test_divergence_guard_catches_a_slide_back_to_the_loss_of_guessing():
    caught = _drift_to_guessing(POLICIES["divergence_guard"](), chance=1.1)
    assert caught and caught[0].knob == "rollback" and "forgot what it learned" in caught[0].reason
    assert 130 <= caught[0].step < 140, "ten steps at the loss of guessing: noise is shorter"
    # 1.08 is under 1.5x any average the run had: only the loss of guessing gives the slide away
    assert _drift_to_guessing(POLICIES["divergence_guard"](), chance=None) == []
    assert _drift_to_guessing(POLICIES["divergence_guard"](collapse=0.0), chance=1.1) == []


def test_chance_loss_is_the_entropy_of_the_smoothed_class_frequencies():
    from attncoach.tasks.text_classification import chance_loss

    assert chance_loss([0, 1, 2] * 5, 3) == pytest.approx(math.log(3))
    assert chance_loss([0] * 9 + [1], 2) == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))
    smoothed = chance_loss([0] * 10, 2, label_smoothing=0.2)
    assert smoothed == pytest.approx(-(0.9 * math.log(0.9) + 0.1 * math.log(0.1)))
    assert chance_loss([], 3) is None


def test_coach_records_decisions_and_summarises(tmp_path):
    path = tmp_path / "coach.jsonl"
    coach = Coach(build_policies(["plateau", {"divergence_guard": {"warmup": 0}}]), Knobs(), path)
    coach.observe(Signals(1, evaluated=True, val_metric=0.5))
    coach.observe(Signals(2, evaluated=True, val_metric=0.5))
    coach.observe(Signals(3, evaluated=True, val_metric=0.5))
    coach.observe(Signals(4, loss=float("nan"), nonfinite=True))
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["policy"], x["knob"]) for x in lines] == [
        ("plateau", "lr_scale"),
        ("divergence_guard", "rollback"),
        ("divergence_guard", "lr_scale"),
    ]
    assert set(lines[0]) == {"step", "policy", "knob", "old", "new", "reason", "signals"}
    summary = coach.summary()
    assert summary["decisions"] == {
        "divergence_guard:lr_scale": 1,
        "divergence_guard:rollback": 1,
        "plateau:lr_scale": 1,
    }
    assert summary["knobs"]["lr_scale"] == {"start": 1.0, "end": 0.25}
    assert any("lr_scale 1 -> 0.25" in line for line in coach.summary_lines())
    coach.truncate_log(3)
    assert len(path.read_text().splitlines()) == 1


@pytest.mark.parametrize(
    "policies, words",
    [
        ("[nope]", "unknown coach policy 'nope'"),
        ("[{plateau: {patiance: 2}}]", "has no parameter 'patiance'"),
        ("[{plateau: {patience: two}}]", "must be int"),
        ("[{hypergradient_lr: {min_scale: 2, max_scale: 1}}]", "min_scale (2) is greater than max_scale (1)"),
        ("[{regularisation: {dropout_min: 0.5, dropout_max: 0.1}}]", "dropout_min"),
        ("[{plateau: {factor: 1.5}}]", "factor must be in (0, 1)"),
        ("[plateau, plateau]", "listed twice"),
        ("[[plateau]]", "must be a policy name"),
    ],
)
def test_bad_policies_are_refused_at_config_time(policies, words):
    with pytest.raises(AttncoachError) as info:
        load_config(None, ["coach.enabled=true", f"coach.policies={policies}"])
    assert words in str(info.value), str(info.value)


def test_targets_are_checked_and_can_be_set_key_by_key():
    cfg = load_config(None, ["train.target.value=0.8"])
    assert cfg.train.target.metric == "macro_f1" and cfg.train.target.value == 0.8
    with pytest.raises(AttncoachError, match="train.target.metric"):
        load_config(None, ["train.target={metric: loss, value: 0.1}"])


def test_divergence_guard_catches_a_slow_drift_to_guessing():
    """A classifier wrecked by a too-large LR drifts from loss 0.6 towards ln 3: no single batch spikes 5x."""
    policy = POLICIES["divergence_guard"](warmup=10, trend_factor=1.5)
    knobs = Knobs()
    healthy = [d for step in range(1, 60) for d in policy.observe(Signals(step, loss=0.6, loss_ema=0.6), knobs)]
    assert healthy == []
    drifting = []
    for step, loss in enumerate([0.8, 1.0, 1.1, 1.1, 1.1], 60):
        drifting += policy.observe(Signals(step, loss=loss, loss_ema=0.62), knobs)
    assert drifting and drifting[0].knob == "rollback" and "climbed above 1.5x" in drifting[0].reason


def test_a_curriculum_data_shift_resets_the_guards_loss_references():
    policy, knobs = POLICIES["divergence_guard"](), Knobs()
    for step in range(1, 121):  # the easy examples of a first round: well below the loss of guessing
        assert policy.observe(Signals(step, loss=0.5, loss_ema=0.5, chance_loss=1.1), knobs) == []
    policy.data_shift()  # a Leitner round of the examples answered wrong: their loss is near guessing
    seen = [
        d
        for step in range(121, 200)
        for d in policy.observe(Signals(step, loss=1.08, loss_ema=1.08, chance_loss=1.1), knobs)
    ]
    assert seen == [], "the harder round is not a collapse"


def test_regularisation_forgets_the_last_gap_on_a_data_shift():
    policy, knobs = POLICIES["regularisation"](), Knobs()
    assert policy.observe(Signals(10, evaluated=True, gap=0.05), knobs) == []
    policy.data_shift()
    assert policy.observe(Signals(20, evaluated=True, gap=0.5), knobs) == [], "no gap from before the shift"
