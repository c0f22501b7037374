"""`moodmoji dataset build | show | import`."""

import argparse
from pathlib import Path

from gan.emoji_set.settings import EmojiSetSettings
from moodmoji.errors import MoodmojiError


def register(subparsers: argparse._SubParsersAction) -> None:
    from gan.emoji_set.packages import ART_STYLES

    dataset = subparsers.add_parser(
        "dataset", help="build, inspect or extend the Positive/Negative emoji image set"
    ).add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    build = dataset.add_parser(
        "build",
        help="fetch pinned open-licensed emoji art, label, balance and write the set",
        description="Writes positive/, negative/, manifest.csv and ATTRIBUTION.md. "
        "Styles: " + ", ".join(ART_STYLES) + ".",
    )
    build.add_argument("--out", type=Path, help="set folder (default <data_dir>/emoji)")
    build.add_argument(
        "--styles",
        default="all",
        help="comma-separated art styles, or 'all' (default)",
    )
    build.add_argument(
        "--balance",
        help="images per label: 'max' (as many as the smaller label has; the default), "
        "'none' (keep all), or a number",
    )
    build.add_argument("--seed", type=int, help="seed of the balancing draw")
    build.add_argument("--cache", type=Path, help="package cache (default <cache_dir>/emoji-art)")
    build.set_defaults(handler=_build)

    show = dataset.add_parser("show", help="counts per label and style, and a contact sheet PNG")
    show.add_argument("--dir", type=Path, help="set folder (default <data_dir>/emoji)")
    show.add_argument(
        "--sheet", type=Path, help="contact sheet path (default <set>/contact_sheet.png)"
    )
    show.add_argument("--per-label", type=int, default=96, help="images per label on the sheet")
    show.add_argument("--seed", type=int, help="seed of the images drawn for the sheet")
    show.set_defaults(handler=_show)

    add = dataset.add_parser(
        "import",
        help="add your own images from a folder or zip (labelled by positive/ or negative/ "
        "sub-folders)",
    )
    add.add_argument("source", type=Path, help="folder or .zip with positive/ and negative/")
    add.add_argument("--dir", type=Path, help="set folder (default <data_dir>/emoji)")
    add.add_argument(
        "--licence", default="unspecified", help="licence of the images, kept in the manifest"
    )
    add.set_defaults(handler=_import)


def register_bench(bench_subparsers: argparse._SubParsersAction) -> None:
    bench = bench_subparsers.add_parser(
        "emoji-set",
        help="time `dataset build` from an empty package cache (needs npm's registry), then warm",
    )
    bench.set_defaults(handler=_bench)


def choose_styles(text: str) -> list:
    from gan.emoji_set.packages import ART_STYLES

    if text.strip().lower() == "all":
        return list(ART_STYLES.values())
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in ART_STYLES]
    if unknown or not names:
        raise MoodmojiError(
            f"unknown style {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ART_STYLES)} or 'all'"
        )
    return [ART_STYLES[name] for name in dict.fromkeys(names)]


def _build(args: argparse.Namespace) -> int:
    from gan.emoji_set.build import build_emoji_set, parse_balance
    from gan.emoji_set.manifest import read_manifest
    from gan.emoji_set.sheet import count_table

    settings = EmojiSetSettings()
    report = build_emoji_set(
        out_dir=args.out or settings.set_dir(),
        styles=choose_styles(args.styles),
        cache_dir=args.cache or settings.art_cache_dir(),
        balance=parse_balance(args.balance or settings.emoji_set_balance),
        seed=settings.emoji_set_seed if args.seed is None else args.seed,
        npm=settings.emoji_set_npm,
        fetch_timeout_s=settings.emoji_set_fetch_timeout_s,
    )
    faces = report.labelled_faces
    how = report.labelled_by
    print(
        f"labelled faces: {faces['positive']} positive "
        f"({how['positive', 'ranking']} by the ranking, {how['positive', 'subgroup']} by "
        f"sub-group), {faces['negative']} negative ({how['negative', 'ranking']} by the "
        f"ranking, {how['negative', 'subgroup']} by sub-group)"
    )
    print(
        f"sub-group rule vs ranking: {report.agreement.agreed} of {report.agreement.compared} agree"
    )
    for style in report.styles:
        matched = ", ".join(f"{n} by {h}" for h, n in sorted(style.matched.items()))
        check = style.name_check
        checked = f"; names agree with chars.json {check.agreed}/{check.compared}" if check else ""
        print(f"  {style.style}: {matched}; {len(style.missing)} faces not drawn{checked}")
    balance = "unbalanced" if report.per_class is None else f"{report.per_class} per label"
    print(
        f"images: {report.available['positive']} positive, {report.available['negative']} "
        f"negative available ({report.duplicates_dropped} pixel duplicates dropped); {balance}"
        + (f"; {report.imports_kept} imported kept" if report.imports_kept else "")
    )
    print(count_table(read_manifest(report.out_dir)))
    print(f"wrote {report.total} images to {report.out_dir} in {report.seconds:.1f} s")
    return 0


def _show(args: argparse.Namespace) -> int:
    from gan.emoji_set.manifest import read_manifest
    from gan.emoji_set.sheet import SHEET_NAME, contact_sheet, count_table

    settings = EmojiSetSettings()
    set_dir = args.dir or settings.set_dir()
    rows = read_manifest(set_dir)
    print(count_table(rows))
    seed = settings.emoji_set_seed if args.seed is None else args.seed
    sheet = contact_sheet(
        set_dir, rows, args.sheet or set_dir / SHEET_NAME, per_label=args.per_label, seed=seed
    )
    print(f"contact sheet: {sheet}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from gan.emoji_set.importer import import_images

    settings = EmojiSetSettings()
    report = import_images(
        set_dir=args.dir or settings.set_dir(),
        source=args.source,
        licence=args.licence,
        min_side=settings.emoji_set_import_min_side,
        max_side=settings.emoji_set_import_max_side,
    )
    for name, reason in report.corrupt:
        print(f"corrupt, skipped: {name} ({reason})")
    for name, reason in report.rejected:
        print(f"rejected: {name} ({reason})")
    for name in report.duplicates:
        print(f"duplicate, dropped: {name}")
    for name in report.unlabelled:
        print(f"not under positive/ or negative/, skipped: {name}")
    added = ", ".join(f"{report.added[label]} {label}" for label in ("positive", "negative"))
    print(f"added {added} to {report.set_dir}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import tempfile

    from gan.emoji_set.build import build_emoji_set
    from gan.emoji_set.packages import ART_STYLES
    from moodmoji.benchmarks import write_section

    lines = [
        "| run | cache | seconds | images | per label |",
        "| --- | --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory(prefix="moodmoji-emoji-bench-") as scratch:
        cache, out = Path(scratch) / "cache", Path(scratch) / "emoji"
        for run, cache_state in ((1, "empty"), (2, "warm")):
            report = build_emoji_set(out, list(ART_STYLES.values()), cache)
            lines.append(
                f"| {run} | {cache_state} | {report.seconds:.1f} | {report.total} "
                f"| {report.per_class} |"
            )
    body = "All pinned styles, default balance, package fetches included.\n\n" + "\n".join(lines)
    path = write_section("emoji-set", body, "moodmoji bench emoji-set")
    print(body)
    print(f"written to {path}")
    return 0
