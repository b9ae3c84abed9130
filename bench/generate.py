"""Benchmark of image generation: KV cache, guidance and batching, as ratios.

Runs an untrained prior of realistic size (the numbers depend on shapes, not weights)
and prints, in one run:

- tokens/second with the KV cache vs recomputing the whole sequence every step;
- guided (conditional + null pass batched as 2B) vs unguided sampling;
- images/second generating a batch at once vs one image at a time (decoder included).

With ``--training`` it also times one epoch of tokenizer and prior training on random
data of the given size, to size a training recipe for a time budget.

    python bench/generate.py                   # 32 px emoji defaults on the CPU
    python bench/generate.py --grid 16 --device cuda --training --images 4495
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from embedspace.generator import (
    Generator,
    Prior,
    PriorConfig,
    TokenizerConfig,
    VQTokenizer,
    sample,
)
from embedspace.recipes.generator_training import train_prior, train_tokenizer


def timed(*functions: Callable[[], object], device: torch.device, repeats: int) -> list[float]:
    """Best wall time (seconds) of each function over ``repeats`` rounds after a warm-up round.

    Rounds alternate between the functions, so drifting load on a shared machine
    affects each alike.
    """
    best = [float("inf")] * len(functions)
    for round_ in range(repeats + 1):
        for i, fn in enumerate(functions):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_ > 0:
                best[i] = min(best[i], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads (torch.set_num_threads); 1 on a shared machine")
    parser.add_argument("--grid", type=int, default=8, help="code grid side (8 for 32 px, 16 for 64 px)")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", type=int, default=384)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--dim", type=int, default=384, help="condition dimension D")
    parser.add_argument("--batch", type=int, default=8, help="images per batch")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (best kept); recompute runs once")
    parser.add_argument("--training", action="store_true", help="also time one training epoch of each part")
    parser.add_argument("--images", type=int, default=4495, help="dataset size for --training")
    parser.add_argument("--tokenizer-widths", default="64,128,128", help="TokenizerConfig.widths")
    parser.add_argument("--tokenizer-blocks", type=int, default=1, help="TokenizerConfig.blocks_per_level")
    parser.add_argument("--tokenizer-batch", type=int, default=128)
    parser.add_argument("--prior-batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    prior_config = PriorConfig(vocab_size=args.vocab, grid_size=args.grid, condition_dim=args.dim, n_prefix=4,
                               n_layer=args.layers, n_head=args.heads, n_embd=args.width)
    widths = tuple(int(w) for w in args.tokenizer_widths.split(","))
    tokenizer_config = TokenizerConfig(image_size=args.grid * 2 ** (len(widths) - 1), widths=widths,
                                       blocks_per_level=args.tokenizer_blocks, codebook_size=args.vocab)
    prior = Prior(prior_config).to(device).eval()
    tokenizer = VQTokenizer(tokenizer_config).to(device).eval()
    generator = Generator(tokenizer, prior, "bench")
    conditions = F.normalize(torch.randn(args.batch, args.dim, generator=torch.Generator().manual_seed(0)), dim=1)
    L, B = prior_config.sequence_length, args.batch
    print(f"device={device} threads={args.threads} batch={B} tokens/image={L}")
    print(f"prior: {prior.num_parameters() / 1e6:.1f}M parameters, {prior_config}")
    print(f"tokenizer: {sum(p.numel() for p in tokenizer.parameters()) / 1e6:.1f}M parameters, {tokenizer_config}")

    def run(**options) -> Callable[[], object]:
        return lambda: sample(prior, conditions, generator=torch.Generator().manual_seed(0), **options)

    cached, unguided = timed(run(guidance=3.0), run(guidance=1.0), device=device, repeats=args.repeats)
    recomputed, = timed(run(guidance=3.0, use_cache=False), device=device, repeats=1)  # slow: one timed run
    print("\n1. KV cache vs full recompute (guidance 3, batch %d)" % B)
    print(f"   cached      {B * L / cached:9.0f} tokens/s")
    print(f"   recompute   {B * L / recomputed:9.0f} tokens/s")
    print(f"   ratio       {recomputed / cached:9.2f}x faster with the cache")
    print("\n2. guided vs unguided (KV cache, batch %d)" % B)
    print(f"   unguided    {B * L / unguided:9.0f} tokens/s")
    print(f"   guided      {B * L / cached:9.0f} tokens/s (conditional + null batched)")
    print(f"   ratio       {cached / unguided:9.2f}x the time of unguided (2 passes would be 2x if compute-bound)")

    vectors = conditions.numpy()
    batched, single = timed(lambda: generator.generate(vectors, n=1, guidance=3.0, batch_size=B),
                            lambda: generator.generate(vectors, n=1, guidance=3.0, batch_size=1),
                            device=device, repeats=args.repeats)
    print("\n3. batched vs one image at a time (guidance 3, decoder included, %d images)" % B)
    print(f"   batch {B:<4}   {B / batched:9.2f} images/s")
    print(f"   one by one  {B / single:9.2f} images/s")
    print(f"   ratio       {single / batched:9.2f}x faster batched")
    if args.training:
        time_training(args, tokenizer_config, prior_config, device)


def time_training(args: argparse.Namespace, tokenizer_config: TokenizerConfig, prior_config: PriorConfig,
                  device: torch.device) -> None:
    """Seconds per epoch of each part on random data (the second epoch of two, after warm-up)."""
    rng = np.random.default_rng(0)
    size, N = tokenizer_config.image_size, args.images
    images = rng.integers(0, 256, size=(N, size, size, 3), dtype=np.uint8)
    codes = rng.integers(0, prior_config.vocab_size, size=(N, prior_config.grid_size, prior_config.grid_size))
    conditions = rng.standard_normal((N, prior_config.condition_dim)).astype(np.float32)
    conditions /= np.linalg.norm(conditions, axis=1, keepdims=True)

    def epoch_seconds(train: Callable[[int], object]) -> float:
        for epochs in (1, 2):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            train(epochs)
            if device.type == "cuda":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - start
            if epochs == 1:
                first = elapsed
        return elapsed - first

    tokenizer_epoch = epoch_seconds(lambda e: train_tokenizer(
        images, tokenizer_config, epochs=e, batch_size=args.tokenizer_batch, device=device, progress=False))
    prior_epoch = epoch_seconds(lambda e: train_prior(
        codes, conditions, conditions, prior_config, epochs=e, batch_size=args.prior_batch, device=device,
        progress=False))
    print(f"\n4. training on {N} random images ({device})")
    print(f"   tokenizer   {tokenizer_epoch:7.2f} s/epoch  ({N / tokenizer_epoch:8.0f} images/s, batch "
          f"{args.tokenizer_batch}) -> {int(120 / tokenizer_epoch)} epochs in 2 minutes")
    print(f"   prior       {prior_epoch:7.2f} s/epoch  ({N / prior_epoch:8.0f} sequences/s, batch "
          f"{args.prior_batch}) -> {int(120 / prior_epoch)} epochs in 2 minutes")


if __name__ == "__main__":
    main()
