"""The training loops' shared scaffolding: the learning-rate schedule and the epoch plan under a time budget."""

from __future__ import annotations

import math

import torch

from embedspace.recipes.loop import EpochPlan, capped_warmup, set_learning_rate, warmup_cosine


def test_schedule_warms_up_linearly_then_decays_to_its_floor():
    rates = [warmup_cosine(step, total_steps=100, warmup_steps=10, final_fraction=0.1) for step in range(120)]
    assert rates[:10] == [(step + 1) / 10 for step in range(10)]  # reaches the peak on the last warm-up step
    assert rates[10] == 1.0 and all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert math.isclose(rates[55], 0.1 + 0.9 * 0.5) and rates[100] == rates[119] == 0.1
    assert warmup_cosine(100, 100, 10) == 0.0  # the encoder towers decay to zero


def test_warmup_is_capped_for_short_runs():
    assert capped_warmup(200, 10_000) == 200 and capped_warmup(200, 300) == 30 and capped_warmup(200, 5) == 1


def test_learning_rate_reaches_every_parameter_group():
    optimizer = torch.optim.AdamW([{"params": [torch.nn.Parameter(torch.ones(2))]}, {"params": [torch.nn.Parameter(torch.ones(1))], "weight_decay": 0.0}], lr=1.0)
    set_learning_rate(optimizer, 0.25)
    assert [group["lr"] for group in optimizer.param_groups] == [0.25, 0.25]


def test_epoch_plan_resumes_where_it_stopped_and_keeps_to_its_budget():
    plan = EpochPlan(epochs=5, steps_per_epoch=3, start_epoch=2)
    assert list(plan) == [2, 3, 4] and plan.total_steps == 15
    budgeted = EpochPlan(epochs=50, steps_per_epoch=3, time_budget_s=0.0, name="test")
    assert list(budgeted) == [0]  # the pace is known after one epoch, and no second one fits
    assert budgeted.planned == 1 and budgeted.total_steps == 3  # the schedule ends with the plan
