"""``tag``, ``rmi``, ``image prune`` and ``system df``."""

import sys
from typing import Annotated

import typer

from imgctl.cli import state
from imgctl.cli.platformopt import PlatformOpt, platform_arg
from imgctl.errors import PartialFailure



def tag_cmd(
    source: Annotated[str, typer.Argument(help="Image to tag: NAME[:TAG], NAME@DIGEST, or an image ID (prefix).", show_default=False)],
    target: Annotated[str, typer.Argument(help="New name: NAME[:TAG].", show_default=False)],
) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    from imgctl.lifecycle import tag_image

    tag_image(state.store(), source, target)




def rmi_cmd(
    images: Annotated[list[str], typer.Argument(help="Images to remove: names, NAME@DIGEST or IDs.", show_default=False)],
    force: Annotated[bool, typer.Option("--force", "-f", help="Remove an image referenced in several repositories.")] = False,
    no_prune: Annotated[bool, typer.Option("--no-prune", help="Keep the blobs of removed images.")] = False,
    platform: PlatformOpt = None,
) -> None:
    """Remove one or more images (untag, then delete what nothing else uses)."""
    from imgctl.lifecycle import remove_images, remove_platform_images

    errors = []
    plat = platform_arg(platform)
    if plat is not None:  # one platform's content; the image and its tags stay
        outcomes = remove_platform_images(state.store(), images, plat, prune=not no_prune)
    else:
        outcomes = remove_images(state.store(), images, force=force, prune=not no_prune)
    for outcome in outcomes:
        for line in outcome.lines:
            print(line)
        if outcome.error is not None:
            errors.append(outcome.error)
    if errors:
        raise PartialFailure(errors)




def prune_cmd(
    all_untagged: Annotated[bool, typer.Option("--all", "-a", help="Remove every image without a tag, not just dangling ones.")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Do not ask for confirmation.")] = False,
) -> None:
    """Remove unused images: dangling ones, or with -a every image without a tag."""
    from imgctl.cli.format.units import human_size
    from imgctl.lifecycle import prune_images

    if not force:
        what = "all images without at least one tag" if all_untagged else "all dangling images"
        print(f"WARNING! This will remove {what}.")
        sys.stdout.write("Are you sure you want to continue? [y/N] ")
        sys.stdout.flush()
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        if answer.strip().lower() not in ("y", "yes"):
            if not answer:
                print()
            return
    result = prune_images(state.store(), all_untagged=all_untagged)
    if result.lines:
        print("Deleted Images:")
        for line in result.lines:
            print(line)
        print()
    print(f"Total reclaimed space: {human_size(result.reclaimed, 4)}")




def df_cmd(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show per-image space usage.")] = False,
) -> None:
    """Show disk usage of the store: blobs shared between images count once."""
    import time

    from imgctl.cli.format.tables import render_table
    from imgctl.cli.format.units import created_since, human_size
    from imgctl.lifecycle import disk_usage

    du = disk_usage(state.store())
    pct = (du.reclaimable * 100 // du.size) if du.size else 0
    if not verbose:
        print(
            render_table(
                ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"],
                [["Images", str(du.total), str(du.active), human_size(du.size, 4), f"{human_size(du.reclaimable, 4)} ({pct}%)"]],
            )
        )
        return
    now = time.time()
    print("Images space usage:\n")
    print(
        render_table(
            ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE"],
            [
                [u.repository, u.tag, u.id[7:19], created_since(u.created_ts, now), human_size(u.size, 4), human_size(u.shared, 4), human_size(u.unique, 4)]
                for u in du.images
            ],
        )
    )




def verify_cmd(
    repair: Annotated[bool, typer.Option("--repair", help="Remove corrupt blobs and mark affected images for a fresh pull.")] = False,
) -> None:
    """Re-hash every blob and check every image; one line per problem, exit 1 if any."""
    from imgctl.errors import StoreError
    from imgctl.cli.format.width import terminal_safe
    from imgctl.reference import familiar_name
    from imgctl.verify import verify_store

    store = state.store()
    report = verify_store(store, repair=repair)
    for problem in report.problems:  # may quote names found on disk (stray entries)
        print(terminal_safe(str(problem)))
    for digest in report.removed:
        print(f"Removed corrupt blob {digest}")
    for line in report.repairs:
        print(terminal_safe(line))
    if report.damaged:
        names = {}
        for repo, tag, image_id in store.index.all_tags():
            names.setdefault(image_id, familiar_name(repo, tag))
        for repo, digest, image_id in store.index.all_pins():
            names.setdefault(image_id, familiar_name(repo, digest=digest))
        for image_id in report.damaged:
            how = f"imgctl pull {names[image_id]}" if image_id in names else "pull it again by name"
            print(f"Image {image_id[7:19]} needs a pull to be complete again: {how}")
    n = len(report.problems)
    summary = f"Verified {report.blobs} blobs and {report.images} images"
    if n:
        raise StoreError(f"{summary}: {n} problem{'s' if n != 1 else ''} found")
    print(f"{summary}: no problems found")


