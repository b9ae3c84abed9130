"""Command line: a table from subcommand to one library call. No logic of its own.

Run ``embedspace --help`` for the list. Errors a user can cause print one line to
stderr and exit with status 2; results go to stdout. Each command imports what it
calls, so ``--help`` and light commands never import torch.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from embedspace.errors import AudioDecodeError, ImageDecodeError, MissingDependencyError, ModelLoadError, SpaceError
from embedspace.models.registry import DEFAULT_MODEL, list_models, model_info

if TYPE_CHECKING:
    from embedspace.space import Space

logger = logging.getLogger("embedspace")

USER_ERRORS = (SpaceError, ModelLoadError, ImageDecodeError, AudioDecodeError, MissingDependencyError, ValueError, FileNotFoundError)

#: Packages of the ``embedspace[dashboard]`` extra, named when ``embedspace serve`` cannot import them.
DASHBOARD_PACKAGES = frozenset({"dash", "plotly", "flask", "werkzeug"})


def _print_frame(frame, as_json: bool) -> None:
    if as_json:
        print(frame.to_json(orient="records", indent=2))
    elif frame.empty:
        print("(no results)")
    else:
        print(frame.to_string(index=False, float_format=lambda value: f"{value:.3f}"))


def _open(args: argparse.Namespace) -> Space:
    """Open the command's space, with the model named by ``--model`` when given (a space never names a model folder itself)."""
    from embedspace.space import Space

    model_source = getattr(args, "model", None)
    if model_source:
        from embedspace.models.model import EmbeddingModel

        return Space.open(args.space, model=EmbeddingModel.load(model_source))
    return Space.open(args.space)


def cmd_create(args: argparse.Namespace) -> None:
    from embedspace.space import Space

    space = Space.create(args.space, model=args.model, factory=args.index, vector_dtype="float16" if args.float16 else "float32")
    print(f"created {space.path} (model {space.model_id}, {space.dim}-d, index {space.factory})")


def cmd_add(args: argparse.Namespace) -> None:
    ids = _open(args).add_files(args.paths, texts=args.text, on_error="skip" if args.skip_bad else "raise")
    print(f"added {len(ids)} items" + (f" (ids {ids[0]}..{ids[-1]})" if ids else ""))


def cmd_ingest(args: argparse.Namespace) -> None:
    space = _open(args)
    result = space.ingest(args.inputs, engine=args.engine, workers=args.workers, address=args.address, on_error="skip" if args.skip_bad else "raise")
    resumed = f", {result.resumed_blocks} block(s) committed by an earlier run" if result.resumed_blocks else ""
    print(f"ingested {result.added:,} items in {result.blocks} block(s){resumed} into {space.path} ({len(space):,} items now)")
    for line in result.skipped:
        print(f"skipped: {line}")


def cmd_search(args: argparse.Namespace) -> None:
    _print_frame(_open(args).search(args.query, k=args.k, modality=args.modality, per_modality=args.per_modality), args.json)


def cmd_remove(args: argparse.Namespace) -> None:
    removed = _open(args).remove(args.ids)
    print(f"removed {removed} items")


def cmd_index(args: argparse.Namespace) -> None:
    space = _open(args)
    if args.action == "build":
        factory = space.build_index(args.factory, args.train_sample, engine=args.engine, workers=args.workers, address=args.address)
        print(f"built index {factory} over {len(space):,} items of {space.path}")
    else:
        print("\n".join(space.evaluate_index(queries=args.queries, k=args.k).lines()))


def cmd_compact(args: argparse.Namespace) -> None:
    space = _open(args)
    before, removed = len(space.store.read_manifest()["segments"]), space.info()["removed"]
    space.compact()
    print(f"merged {before} part(s) into one" + (f", dropping the rows of {removed} removed item(s)" if removed else ""))


def cmd_check(args: argparse.Namespace) -> None:
    from embedspace.check import check_space

    report = check_space(args.space, repair=args.repair)
    print("\n".join(report.lines()))
    if not report.ok and not args.repair:
        raise SystemExit(1)


def cmd_info(args: argparse.Namespace) -> None:
    from embedspace.space import Space

    print(json.dumps(Space.open(args.space).info(), indent=2))


def cmd_models(args: argparse.Namespace) -> None:
    for name in list_models():
        info = model_info(name)
        towers = ", ".join(info.trained) or "untrained image/audio towers"
        print(f"{name:<20} {info.embed_dim:>4}-d  audio={'yes' if info.has_audio else 'no':<3}  trained: {towers}")


def cmd_data_build(args: argparse.Namespace) -> None:
    from embedspace.recipes.demo import ensure_dataset

    print(f"dataset ready in {ensure_dataset(args.out)}")


def cmd_demo_build(args: argparse.Namespace) -> None:
    from embedspace.recipes.demo import build_demo_space, refresh_demo_space

    if args.if_needed:
        _, moved, space = refresh_demo_space(args.out, args.data, model=args.model)
        if space is None:
            print(f"{args.out} is up to date with the installed {args.model} weights")
            return
        if moved is not None:
            print(f"{args.out} was built with other {args.model} weights; the old space is now {moved}")
    else:
        space = build_demo_space(args.out, args.data, model=args.model)
    print(f"built {space.path}: {json.dumps(space.info()['by_modality'])}")


def cmd_train(args: argparse.Namespace) -> None:
    if args.part == "encoder":
        cmd_train_encoder(args)
        return
    if args.space is not None:
        cmd_train_space_generator(args)
        return
    from embedspace.recipes.generator_build import build_generator, build_tokenizer
    from embedspace.recipes.generator_data import RECIPES, load_generator_data

    # the prior trains on its recipe's emoji designs, the tokenizer on OpenMoji's
    designs = RECIPES["emoji"].prior_designs if args.part == "generator" else ("openmoji",)
    data = load_generator_data(args.data, designs)
    options = {"epochs": args.epochs, "time_budget_s": args.time_budget, "device": args.device,
               "seed": 0 if args.seed is None else args.seed, "resume": args.resume}
    if args.part == "tokenizer":
        build_tokenizer(data, args.out, **options)
        print(f"wrote {args.out}/tokenizer; next: embedspace train generator --data {args.data} --out {args.out}")
    else:
        build_generator(data, args.out, model=args.model, **options)
        print(f"wrote generator {args.out}")


def cmd_train_space_generator(args: argparse.Namespace) -> None:
    if args.part != "generator":
        raise ValueError("--space trains a whole generator: use `embedspace train generator --space SPACE --out DIR`")
    from embedspace.recipes.generator_space import train_space_generator

    train_space_generator(args.space, args.out, epochs=args.epochs, time_budget_s=args.time_budget, device=args.device,
                          seed=0 if args.seed is None else args.seed, resume=args.resume, report=lambda line: print(line, flush=True))


def cmd_generator_set(args: argparse.Namespace) -> None:
    from embedspace.space import Space

    space = Space.open(args.space)
    space.set_generator(None if args.generator.lower() == "none" else args.generator)
    chosen = space.default_generator()
    print(f"{space.path} now generates with {chosen}" if chosen is not None else f"{space.path} records no generator (its model has none registered)")


def cmd_train_encoder(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from embedspace.recipes.encoder_training import PRESETS, train_encoder

    overrides = {name: getattr(args, name) for name in ("image_epochs", "audio_epochs", "batch_size", "lr", "seed", "alignment_weight", "audio_alignment_weight") if getattr(args, name) is not None}
    if args.designs is not None:
        overrides["designs"] = tuple(name.strip() for name in args.designs.split(",") if name.strip())
    folder = train_encoder(args.data, args.out, model=args.model, config=replace(PRESETS[args.preset], **overrides), device=args.device)
    print(f"wrote {folder}")


def cmd_eval(args: argparse.Namespace) -> None:
    if args.names[:1] == ["generator"]:
        from embedspace.recipes.generator_report import evaluate_and_save as evaluate_generator

        if len(args.names) > 2:
            raise ValueError("usage: embedspace eval generator [NAME]")
        shapes = None if args.shapes.lower() == "none" else args.shapes
        print(evaluate_generator(args.names[1] if len(args.names) == 2 else "emoji-mini", args.data, shapes, args.out)[1])
        return
    from embedspace.recipes.encoder_evaluation import evaluate_and_save

    if len(args.names) > 1:
        raise ValueError("usage: embedspace eval [MODEL] or embedspace eval generator [NAME]")
    print(evaluate_and_save(args.names[0] if args.names else DEFAULT_MODEL, args.data, args.out).markdown)


def cmd_serve(args: argparse.Namespace) -> None:
    from embedspace.space import Space

    try:
        from dashboard import serve
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in DASHBOARD_PACKAGES:
            raise
        raise MissingDependencyError(error.name, "dashboard", "embedspace serve") from None
    space = Space.open(args.space)  # a clear error for a missing or broken space before the server starts
    try:
        generator = args.generator if args.generator is not None else space.default_generator()
    except SpaceError as error:  # a recorded generator that is gone or changed: serve the maps, say why generation is off
        print(f"embedspace: warning: {_one_line(error)}; generation is off (or pass --generator)", file=sys.stderr)
        generator = None
    print(f"serving {args.space} on http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    serve(args.space, host=args.host, port=args.port, debug=args.debug, generator=None if generator is None or str(generator).lower() == "none" else generator, **({} if args.lod_threshold is None else {"lod_threshold": args.lod_threshold}))


def cmd_project(args: argparse.Namespace) -> None:
    from embedspace.maps import compute_space_projection
    from embedspace.projection import DEFAULT_SAMPLE_SIZE, Projection

    if args.fit_sample is not None and args.fit_sample < 17:
        raise SpaceError(f"--fit-sample must be at least 17 (UMAP's n_neighbors + 2), got {args.fit_sample}")
    space = _open(args)
    for dims in args.dims:
        projection = Projection(n_components=dims, sample_size=args.fit_sample or DEFAULT_SAMPLE_SIZE)
        stored = compute_space_projection(space, dims, projection, refit=args.refit, engine=args.engine, workers=args.workers, address=args.address,
                                          aligned=args.align_modalities)
        fitted = stored.projection.n_samples_fit_
        view = "modality-aligned " if stored.aligned else ""
        print(f"{dims}-d {view}map of {len(stored.ids)} items ({stored.projection.method_}, fitted on {fitted}) at revision {stored.revision}")
        named = ", ".join(f"{info.name} ({info.size})" for info in stored.cluster_info[:5])
        print(f"  {len(stored.cluster_info)} clusters" + (f", the largest: {named}" if named else ""))


def cmd_generate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from PIL import Image

    sources = [(name, value) for name, value in (("text", args.text), ("image", args.image), ("audio", args.audio), ("item", args.item)) if value is not None]
    if len(sources) != 1:
        raise ValueError("give exactly one of --text, --image, --audio or --item")
    query = int(sources[0][1]) if sources[0][0] == "item" else sources[0][1]
    from embedspace.generator import SamplingOptions

    options = SamplingOptions(guidance=args.guidance, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    space = _open(args)
    if args.best_of != 1 and (args.to is not None or args.also):
        raise ValueError("--best-of reranks images from one point; it does not go with --to or --and")
    if args.to is not None and args.also:
        raise ValueError("give --to (a path between two points) or --and (points composed), not both")
    if args.to is not None:
        result = space.generate_between(query, args.to, args.generator, steps=args.steps, options=options)
    elif args.also:
        result = space.generate_composed([query, *args.also], args.generator, n=args.n, options=options)
    else:
        result = space.generate(query, args.generator, n=args.n, options=options, best_of=args.best_of)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for number, image in enumerate(result.images):
        image.save(out / f"{number:03d}.png")
    if args.to is not None:
        width, height = result.images[0].size
        strip = Image.new("RGB", (width * len(result.images), height), "white")
        for number, image in enumerate(result.images):
            strip.paste(image, (number * width, 0))
        strip.save(out / "strip.png")
    print(f"wrote {len(result.images)} images to {out}" + (" and strip.png" if args.to is not None else ""))


def cmd_edit(args: argparse.Namespace) -> None:
    from pathlib import Path

    from embedspace.generator import SamplingOptions

    if (args.item is None) == (args.image is None):
        raise ValueError("give exactly one image to edit: --item ID or --image PATH")
    targets = [value for value in (args.text, args.to_image, args.to_audio, args.to_item) if value is not None]
    if len(targets) != 1:
        raise ValueError("give exactly one new point: --text, --to-image, --to-audio or --to-item")
    options = SamplingOptions(guidance=args.guidance, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    space = _open(args)
    result = space.edit(args.item if args.item is not None else args.image, targets[0], keep=args.keep, generator=args.generator, n=args.n, options=options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for number, image in enumerate(result.images):
        image.save(out / f"{number:03d}.png")
    print(f"wrote {len(result.images)} edited images to {out} (kept: {args.keep})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="embedspace", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true", help="show a traceback for unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, function: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(function=function)
        return sub

    create = command("create", cmd_create, "create an empty space")
    create.add_argument("space", help="folder for the new space")
    create.add_argument("--model", default=DEFAULT_MODEL, help=f"model name or folder (default {DEFAULT_MODEL}; see `embedspace models`)")
    create.add_argument("--index", default=None, help=(
        "FAISS factory string, or 'auto' (default): exact search below 100,000 items "
        "(EMBEDSPACE_ANN_THRESHOLD), an IVF-HNSW-PQ index with exact re-ranking above"))
    create.add_argument("--float16", action="store_true", help="store vectors as float16 (half the disk; scores change by about 1e-3)")

    add = command("add", cmd_add, "add image/audio files (folders recursed) and texts to a space")
    add.add_argument("space")
    add.add_argument("paths", nargs="*", help="image or audio files, or folders")
    add.add_argument("--text", action="append", default=[], help="a text item (repeatable)")
    add.add_argument("--skip-bad", action="store_true", help="add the readable inputs and report the bad ones (default: add nothing if any is bad)")

    ingest = command("ingest", cmd_ingest, "add many inputs in blocks, locally or on Ray; a re-run resumes an interrupted ingest")
    ingest.add_argument("space")
    ingest.add_argument("inputs", nargs="+", metavar="INPUT", help="folders, image/audio files, or tables (.csv/.parquet with a 'text' or 'path' column; other columns become metadata)")
    ingest.add_argument("--engine", choices=["local", "ray"], default="local", help="encode blocks in this process (default) or on a Ray actor pool")
    ingest.add_argument("--workers", type=int, default=None, metavar="N", help="Ray actors, each loading the model once (default: one per CPU)")
    ingest.add_argument("--address", default=None, help="a Ray cluster to join (host:port, ray://host:port or auto; default: a local Ray)")
    ingest.add_argument("--skip-bad", action="store_true", help="ingest the usable rows and list the bad ones (default: add nothing if any is bad)")

    search = command("search", cmd_search, "search a space with text or an image/audio file")
    search.add_argument("space")
    search.add_argument("query", help="text, or a path to an image or audio file")
    search.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    search.add_argument("--modality", choices=["text", "image", "audio"], help="only results of this modality")
    search.add_argument("--per-modality", type=int, default=None, metavar="N", help="the best N of each modality, grouped (instead of one ranking of k)")
    search.add_argument("--json", action="store_true", help="print JSON records")

    info = command("info", cmd_info, "show a space's model, counts and index")
    info.add_argument("space")

    remove = command("remove", cmd_remove, "remove items by id (ids are never reused)")
    remove.add_argument("space")
    remove.add_argument("ids", type=int, nargs="+", help="item ids (see `embedspace search` or `info`)")

    check = command("check", cmd_check, "check a space for damaged parts and leftovers of interrupted writes")
    check.add_argument("space")
    check.add_argument("--repair", action="store_true", help="set damaged parts aside in quarantine/, rebuild derived files, sweep leftovers")

    index = command("index", cmd_index, "build or evaluate a space's approximate index")
    index.add_argument("action", choices=["build", "eval"])
    index.add_argument("space")
    index.add_argument("--factory", default=None, help="build: FAISS factory string (default: chosen by size, e.g. IVF4096_HNSW32,PQ48 at 1M)")
    index.add_argument("--train-sample", type=int, default=None, metavar="N", help="build: train on N sampled vectors (default 64 per list)")
    index.add_argument("--engine", choices=["local", "ray"], default="local", help="build: fill shards on Ray workers and merge them")
    index.add_argument("--workers", type=int, default=None, metavar="N", help="build: Ray workers (default: one per CPU)")
    index.add_argument("--address", default=None, help="build: a Ray cluster to join (host:port or auto)")
    index.add_argument("--queries", type=int, default=200, help="eval: number of queries (stored vectors of random items)")
    index.add_argument("-k", type=int, default=10, help="eval: results per query")

    compact = command("compact", cmd_compact, "merge a space's parts into one, dropping removed items' rows (readers keep working)")
    compact.add_argument("space")

    for sub in (add, ingest, search, remove, index, compact):
        sub.add_argument("--model", default=None, help="model name or folder to use with this space (needed for a space built with a model folder)")

    command("models", cmd_models, "list the models in the registry")

    data = command("data", None, "build the emoji dataset (images and spoken captions)")
    data.add_argument("action", choices=["build"])
    data.add_argument("--out", default="data/datasets/emoji")
    data.set_defaults(function=cmd_data_build)

    demo = command("demo", None, "build the demo emoji space")
    demo.add_argument("action", choices=["build"])
    demo.add_argument("--out", default="data/spaces/emoji")
    demo.add_argument("--data", default="data/datasets/emoji", help="dataset folder (built if missing)")
    demo.add_argument("--model", default=DEFAULT_MODEL)
    demo.add_argument("--if-needed", action="store_true", help=(
        "build only when OUT is missing or was built with other weights of MODEL (an old space is moved aside to OUT.stale-N, not deleted)"))
    demo.set_defaults(function=cmd_demo_build)

    train = command("train", cmd_train, "train model parts")
    train.add_argument("part", choices=["encoder", "tokenizer", "generator"], help=(
        "encoder: the image and audio towers against the frozen text tower; tokenizer: the generator's VQ "
        "tokenizer (writes OUT/tokenizer); generator: the prior on that tokenizer's codes (writes the generator folder OUT)"))
    train.add_argument("--data", default="data/datasets/emoji", help="emoji dataset folder, or 'shapes' (tokenizer/generator only)")
    train.add_argument("--space", default=None, help=(
        "generator only: train tokenizer and prior on this space's images, conditioned on its own vectors (and texts linked "
        "by a shared 'key'), sizes chosen from the number of images; records OUT as the space's generator"))
    train.add_argument("--out", required=True, help="model or generator folder to write")
    train.add_argument("--model", default=DEFAULT_MODEL)
    train.add_argument("--preset", choices=["cpu", "gpu"], default="cpu")
    train.add_argument("--device", default="cpu", help="cpu or cuda")
    for name, kind in (("--image-epochs", int), ("--audio-epochs", int), ("--batch-size", int), ("--lr", float), ("--seed", int)):
        train.add_argument(name, type=kind, default=None)
    train.add_argument("--designs", default=None, help="encoder: emoji designs the image tower trains on, comma-separated (default all four: openmoji,noto,twemoji,fluent)")
    train.add_argument("--alignment-weight", type=float, default=None, help="encoder: weight of the term pulling images onto their captions' vectors (default 1; 0: contrastive loss only)")
    train.add_argument("--audio-alignment-weight", type=float, default=None, help="encoder: the same for clips (default 0)")
    train.add_argument("--epochs", type=int, default=None, help="tokenizer/generator: epochs (default: the recipe's; with --space: of both loops, default chosen from the number of images)")
    train.add_argument("--time-budget", type=float, default=None, help="tokenizer/generator: stop early to fit this many seconds")
    train.add_argument("--resume", action="store_true", help="tokenizer/generator: continue from OUT/checkpoints")

    chooser = command("generator", None, "record the generator a space uses when none is named")
    chooser.add_argument("action", choices=["set"])
    chooser.add_argument("space")
    chooser.add_argument("generator", metavar="NAME|DIR", help="a shipped generator's name, a generator folder, or 'none' to forget the record")
    chooser.set_defaults(function=cmd_generator_set)

    serve = command("serve", cmd_serve, "open the dashboard for a space in the browser")
    serve.add_argument("space")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8050)
    serve.add_argument("--debug", action="store_true", help="Dash debug mode (never on by default)")
    serve.add_argument("--lod-threshold", type=int, default=None, metavar="N", help="maps with more points show a density image of all points under a sample of those in view, refreshed on pan and zoom (default 200000)")
    serve.add_argument("--generator", default=None, help="generator name or folder for the generation panel (default: the space's recorded one, else the one registered for its model, emoji-mini for emoji-mini; 'none' turns it off)")

    generate = command("generate", cmd_generate, "generate images from a point of the space (or along a path between two)")
    generate.add_argument("space")
    generate.add_argument("--text")
    generate.add_argument("--image", help="path to an image file")
    generate.add_argument("--audio", help="path to an audio file")
    generate.add_argument("--item", type=int, help="an item id of the space")
    generate.add_argument("--to", help="a second query (text or file): images along the slerp path, plus strip.png")
    generate.add_argument("--steps", type=int, default=8, help="points on the path (default 8)")
    generate.add_argument("--and", dest="also", action="append", default=[], metavar="QUERY",
                          help="another point the images must answer to as well (repeatable; text or file): composition, for a "
                               "generator trained to compose, e.g. --generator shapes --text 'red shape' --and circle")
    generate.add_argument("-n", type=int, default=4, help="images (default 4)")
    generate.add_argument("--best-of", type=int, default=1, help="draw this many images per image kept and keep those closest to the point by the space's model (default 1: no reranking)")
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--guidance", type=float, default=3.0)
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest codes only (default: off)")
    generate.add_argument("--top-p", type=float, default=None, help="sample among the codes holding this much probability, in (0, 1] (default: off)")
    generate.add_argument("--generator", default=None, help="generator name or folder (default: the space's recorded one, else the one registered for its model, emoji-mini for emoji-mini)")
    generate.add_argument("--out", required=True, help="folder for the PNGs")
    generate.add_argument("--model", default=None, help="model name or folder to use with this space")

    edit = command("edit", cmd_edit, "redraw part of an image toward a new point, token by token, keeping a region")
    edit.add_argument("space")
    edit.add_argument("--item", type=int, help="an image item of the space to edit")
    edit.add_argument("--image", help="an image file to edit")
    edit.add_argument("--text", help="the new point: a text")
    edit.add_argument("--to-image", help="the new point: an image file")
    edit.add_argument("--to-audio", help="the new point: an audio file")
    edit.add_argument("--to-item", type=int, help="the new point: an item id")
    edit.add_argument("--keep", default="top", choices=["top", "bottom", "left", "right", "centre"], help="the region kept token for token (default top)")
    edit.add_argument("-n", type=int, default=4, help="images (default 4)")
    edit.add_argument("--seed", type=int, default=0)
    edit.add_argument("--guidance", type=float, default=3.0)
    edit.add_argument("--temperature", type=float, default=1.0)
    edit.add_argument("--top-k", type=int, default=None, help="sample among the k likeliest codes only (default: off)")
    edit.add_argument("--top-p", type=float, default=None, help="sample among the codes holding this much probability, in (0, 1] (default: off)")
    edit.add_argument("--generator", default=None, help="generator name or folder (default: the space's recorded one, else the one registered for its model)")
    edit.add_argument("--out", required=True, help="folder for the PNGs")
    edit.add_argument("--model", default=None, help="model name or folder to use with this space")

    project = command("project", cmd_project, "compute and store a space's UMAP maps (the dashboard computes missing ones itself)")
    project.add_argument("space")
    project.add_argument("--dims", type=int, nargs="+", choices=[2, 3], default=[2, 3])
    project.add_argument("--refit", action="store_true", help="fit afresh instead of extending a stale map")
    project.add_argument("--align-modalities", action="store_true", help="the modality-aligned view: each modality's mean removed before projecting (stored beside the plain map)")
    project.add_argument("--fit-sample", type=int, default=None, metavar="N", help="fit the map on at most N items and place the rest with transform (default 200,000)")
    project.add_argument("--engine", choices=["local", "ray"], default="local", help="where the transform batches run (default local)")
    project.add_argument("--workers", type=int, default=None, metavar="N", help="Ray workers (default: one per CPU)")
    project.add_argument("--address", default=None, help="a Ray cluster to join (host:port, ray://host:port or auto)")
    project.add_argument("--model", default=None, help="model name or folder to use with this space")

    evaluate = command("eval", cmd_eval, "write the quality report of a model (held-out emoji split) or of a generator")
    evaluate.add_argument("names", nargs="*", metavar="MODEL | generator [NAME]",
                          help=f"a model (default {DEFAULT_MODEL}), or `generator` and a generator name or folder (default emoji-mini)")
    evaluate.add_argument("--shapes", default="shapes", help="generator: the coloured-shapes generator for controllability ('none' to skip)")
    evaluate.add_argument("--data", default="data/datasets/emoji")
    evaluate.add_argument("--out", default=None, help="report folder (default: the model's or generator's folder)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.function(args)
    except USER_ERRORS as error:
        if args.debug:
            raise
        print(f"embedspace: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("embedspace: interrupted", file=sys.stderr)
        return 130
    except SystemExit:
        raise
    except MemoryError:
        print("embedspace: error: out of memory; give smaller inputs (see the input limits in the README)", file=sys.stderr)
        return 2
    except OSError as error:
        if args.debug:
            raise
        print(f"embedspace: error: {error.strerror or error}{f' ({error.filename})' if error.filename else ''}", file=sys.stderr)
        return 2
    except Exception as error:  # never a traceback for anything a user can give; --debug shows it
        if args.debug:
            raise
        print(f"embedspace: error: unexpected {type(error).__name__}: {_one_line(error)} (run with --debug for a traceback and report it)", file=sys.stderr)
        return 1
    return 0


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:2000] + ("…" if len(text) > 2000 else "")


if __name__ == "__main__":
    sys.exit(main())
