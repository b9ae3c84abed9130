"""Benchmark of the audio tower's training step: the shipped front end against the one before it.

The shipped ``emoji-mini`` audio tower reads 40 mel bands at 20 ms hops. The version before
it read 64 bands at 10 ms hops. Both are timed in the same process, on the same random
waveforms, for one forward and backward pass with an AdamW step. A step's cost decides
how many audio epochs fit the CPU training preset.

    python bench/audio_tower.py                 # batch 256, the machine's torch threads
    python bench/audio_tower.py --batch 64 --repeats 5
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from embedspace.models.audio import AudioTower
from embedspace.models.registry import resolve_model


def step_seconds(tower: AudioTower, waveforms: torch.Tensor, repeats: int) -> float:
    """Best-of-``repeats`` seconds for one training step on ``waveforms`` (after one warm-up step)."""
    optimizer = torch.optim.AdamW(tower.parameters())
    best = float("inf")
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        loss = tower(waveforms).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if attempt:
            best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    config, _ = resolve_model("emoji-mini")
    shipped = config.audio
    before = replace(shipped, n_mels=64, hop_length=160)
    torch.manual_seed(0)
    waveforms = 0.1 * torch.randn(args.batch, int(shipped.sample_rate * shipped.max_seconds))
    print(f"batch {args.batch}, {torch.get_num_threads()} torch threads, best of {args.repeats}")
    timings = {}
    for name, audio in (("before (64 mels, 10 ms hops)", before), ("shipped (40 mels, 20 ms hops)", shipped)):
        torch.manual_seed(0)
        seconds = step_seconds(AudioTower(audio, config.embed_dim), waveforms, args.repeats)
        timings[name] = seconds
        print(f"{name:32s} {1000 * seconds / args.batch:6.2f} ms per clip")
    first, second = timings.values()
    print(f"shipped front end: {first / second:.2f}x faster per training step")


if __name__ == "__main__":
    main()
