"""make-dataset's inputs: the options, and the source photos with their ids, groups and splits.

Plain functions, tested without Beam; :mod:`beam_jobs.make_dataset` runs the job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import re

from sbdn_pipeline import features, inputs
from sbdn_pipeline.synth import presets, recipes

# Folders of ../shared/data/sharp made of consecutive street-level shots (see its README).
DEFAULT_SEQUENCE_GROUPS = ("labelmefacade", "spb_facades")
# Shots whose numbers differ by at most this much belong to one capture group.
SEQUENCE_GAP = 5

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclasses.dataclass(frozen=True)
class MakeDatasetOptions:
    """Parameters of one data set generation (all recorded in the manifest).

    Attributes:
        sharp_images: folder, glob, manifest (.txt) or cloud path of sharp source photos.
        output: data set folder (local or cloud).
        variants_per_image: examples per source photo; even variant indices are sharp
            negatives, odd ones blurred positives (so K=8 gives 4 + 4).
        seed: seed of the split assignment and of every example's randomness.
        val_fraction: fraction of source photos in the validation split.
        test_fraction: fraction of source photos in the test split.
        preset: one of ``presets.PRESETS`` ("photographic", "cross-recipe", "realistic",
            "original").
        max_long_side: stored images are capped to this long side; 0 = the preset's own cap
            (photographic 1600, realistic 1024; the original preset stores 224 x 224).
        examples_per_shard: target number of examples per TFRecord shard.
        overwrite: replace an existing data set in ``output``.
        exclude_sources: relative paths (below the source root, as in the manifest's
            ``source_path``) of photos to leave out, e.g. photos whose "sharp" label would be
            wrong because they already contain out-of-focus regions. Leaving a photo out does
            not move any other photo between splits (splits hash each photo on its own).
        segments_dir: folder of human segmentations laid out like the source root
            (``<group>/<stem>_<annotator>.png`` label maps); photos with one get regions that
            follow its segments (photographic presets). Empty: colour segments only.
        natural_dof_sources: relative paths of photos that already have natural depth of
            field: never sharp negatives, their soft parts labelled blurred (photographic).
        sequence_groups: source groups of consecutive shots (file names ending in a shot
            number): a run of shot numbers no more than ``SEQUENCE_GAP`` apart is one capture
            group and goes to one split, so near-duplicates never cross splits.
        test_only_groups: source groups kept out of training and validation altogether
            (all their photos go to the test split: unseen source folders).
        splits: the splits to write (e.g. only val and test for an evaluation-only set).
    """

    sharp_images: str
    output: str
    variants_per_image: int = presets.DEFAULT_VARIANTS_PER_IMAGE
    seed: int = 0
    val_fraction: float = presets.DEFAULT_VAL_FRACTION
    test_fraction: float = presets.DEFAULT_TEST_FRACTION
    preset: str = recipes.DEFAULT_PRESET
    max_long_side: int = 0
    examples_per_shard: int = presets.DEFAULT_EXAMPLES_PER_SHARD
    overwrite: bool = False
    exclude_sources: tuple[str, ...] = ()
    segments_dir: str = ""
    natural_dof_sources: tuple[str, ...] = ()
    sequence_groups: tuple[str, ...] = DEFAULT_SEQUENCE_GROUPS
    test_only_groups: tuple[str, ...] = ()
    splits: tuple[str, ...] = features.SPLITS

    def __post_init__(self) -> None:
        if self.variants_per_image < 1:
            raise ValueError(f"variants_per_image must be >= 1, got {self.variants_per_image}")
        if not (0 <= self.val_fraction < 1 and 0 <= self.test_fraction < 1):
            raise ValueError("val_fraction and test_fraction must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"val_fraction + test_fraction must leave photos for training, got "
                f"{self.val_fraction} + {self.test_fraction}"
            )
        if self.preset not in recipes.PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; expected one of {recipes.PRESETS}")
        unknown = sorted(set(self.splits) - set(features.SPLITS))
        if unknown or not self.splits:
            raise ValueError(f"splits must be some of {features.SPLITS}, got {self.splits}")
        if self.max_long_side and self.max_long_side < 64:
            raise ValueError(f"max_long_side must be 0 or >= 64, got {self.max_long_side}")

    def recipe(self) -> recipes.Recipe:
        """The synthesis recipe these options select."""
        return recipes.recipe_for_preset(self.preset, max_long_side=self.max_long_side)


@dataclasses.dataclass(frozen=True)
class SourcePhoto:
    """One sharp source photo and where its examples go.

    Attributes:
        path: readable path or URI.
        relative_path: path below the source root (posix separators); hashed into source_id.
        source_id: stable id, the first 16 hex digits of sha1(relative_path).
        source_group: first folder of relative_path (e.g. "urban100"), or the root's name.
        split: "train", "val" or "test".
    """

    path: str
    relative_path: str
    source_id: str
    source_group: str
    split: str



def source_root(input_spec: str) -> str:
    """The folder that relative paths (and hence source ids and groups) are taken from.

    A folder is its own root (``gs://bucket/photos/`` too); a glob's root is the folder before
    its first wildcard (``photos/2026-*/*.jpg`` -> ``photos``); a single file's is its folder.
    """
    remote = inputs.is_remote(input_spec)
    if (remote and input_spec.endswith("/")) or (not remote and os.path.isdir(input_spec)):
        root = input_spec.rstrip("/")
    else:
        wildcards = [i for i in (input_spec.find(c) for c in "*?[") if i >= 0]
        static = input_spec[: min(wildcards, default=len(input_spec))]
        root = posixpath.dirname(static) if remote else os.path.dirname(static)
    return root if remote else os.path.abspath(root or ".")


def relative_to_root(path: str, root: str) -> str:
    """``path`` below ``root`` with posix separators (the basename if it is not below it)."""
    if inputs.is_remote(path):
        prefix = root.rstrip("/") + "/"
        return path[len(prefix) :] if path.startswith(prefix) else posixpath.basename(path)
    relative = os.path.relpath(os.path.abspath(path), root)
    if relative.startswith(".."):
        return os.path.basename(path)
    return relative.replace(os.sep, "/")


def make_source_id(relative_path: str) -> str:
    """Stable id of a source photo: 16 hex digits of sha1 of its relative path."""
    return hashlib.sha1(relative_path.encode("utf-8")).hexdigest()[:16]


def source_group_of(relative_path: str, root: str) -> str:
    """The top folder of a relative path, or the root folder's name for files directly in it."""
    parts = relative_path.split("/")
    if len(parts) > 1:
        return parts[0]
    return posixpath.basename(root.replace(os.sep, "/").rstrip("/")) or "root"


def assign_split(source_id: str, seed: int, val_fraction: float, test_fraction: float) -> str:
    """Deterministic split of a source photo from a hash of (seed, source id)."""
    digest = hashlib.sha256(f"{seed}:{source_id}".encode()).digest()
    uniform = int.from_bytes(digest[:8], "big") / 2.0**64
    if uniform < test_fraction:
        return "test"
    if uniform < test_fraction + val_fraction:
        return "val"
    return "train"


def capture_keys(relative_paths: list[str], sequence_groups: tuple[str, ...]) -> dict[str, str]:
    """The capture group of every photo: itself, or its run of consecutive shots.

    In ``sequence_groups`` a file name is a prefix and a shot number
    (``..._boston__p1010736.jpg``); shots of one prefix whose numbers are at most
    :data:`SEQUENCE_GAP` apart form one run (one street walked along). Elsewhere every photo
    is its own group, so the splits of data sets without such folders do not change.
    """
    keys = {path: path for path in relative_paths}
    runs: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for path in relative_paths:
        group, _, name = path.rpartition("/")
        match = re.fullmatch(r"(.*?)(\d+)", posixpath.splitext(name)[0])
        if group.split("/")[0] in sequence_groups and match:
            runs.setdefault((group, match.group(1)), []).append((int(match.group(2)), path))
    for (group, prefix), shots in runs.items():
        shots.sort()
        start, previous = shots[0][0], shots[0][0]
        for number, path in shots:
            if number - previous > SEQUENCE_GAP:
                start = number
            keys[path] = f"{group}/{prefix}#{start}"
            previous = number
    return keys


def read_exclude_list(path: str) -> tuple[str, ...]:
    """Relative photo paths listed in an exclude file, one per line.

    Everything after a ``#`` is a comment (the reason a photo is left out); blank lines are
    skipped; backslashes become ``/`` so a list written on Windows still matches.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: if a path is listed twice.
    """
    # utf-8-sig, as source manifests are read: a BOM from a Windows editor is not a path.
    with open(path, encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    listed: dict[str, None] = {}  # ordered, with O(1) duplicate checks for long lists
    for number, line in enumerate(lines, start=1):
        entry = line.split("#", 1)[0].strip().replace("\\", "/")
        if not entry:
            continue
        if entry in listed:
            raise ValueError(f"{path}:{number}: '{entry}' is listed twice")
        listed[entry] = None
    return tuple(listed)


def list_source_photos(options: MakeDatasetOptions) -> list[SourcePhoto]:
    """Every image file the source spec stands for, with ids, groups and splits.

    Files are kept when their name has an image suffix (for folders and globs); manifests are
    taken as they are. Photos in ``options.exclude_sources`` are left out. Raises early,
    before any pipeline is built, when nothing matches.

    Raises:
        FileNotFoundError: if the spec matches no image files.
        ValueError: if an excluded path matches no source photo (most likely a typo, or a
            list made for another source root).
    """
    spec = options.sharp_images
    try:
        inputs.check_input(spec)
    except inputs.InputError as exc:
        raise FileNotFoundError(str(exc)) from exc
    paths = list(
        inputs.expand_input(
            spec, exclude=None if inputs.is_remote(options.output) else options.output
        )
    )
    if not inputs.is_manifest(spec):
        paths = [p for p in paths if p.lower().endswith(IMAGE_SUFFIXES)]
    if not paths:
        raise FileNotFoundError(
            f"'{spec}' matched no image files (looked for {', '.join(IMAGE_SUFFIXES)})"
        )
    root = source_root(spec)
    if inputs.is_manifest(spec) and not any(inputs.is_remote(p) for p in paths):
        root = os.path.commonpath([os.path.dirname(p) for p in paths])
    excluded = set(options.exclude_sources)
    photos = []
    matched: set[str] = set()
    relatives = {path: relative_to_root(path, root) for path in paths}
    keys = capture_keys(list(relatives.values()), options.sequence_groups)
    for path, relative in relatives.items():
        if relative in excluded:
            matched.add(relative)
            continue
        photo = _source_photo(path, relative, root, keys[relative], options)
        if photo.split in options.splits:
            photos.append(photo)
    unmatched = sorted(excluded - matched)
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} excluded source path(s) match no photo below '{root}': "
            + ", ".join(unmatched[:5])
            + (" ..." if len(unmatched) > 5 else "")
        )
    if not photos:
        raise FileNotFoundError(f"every photo matched by '{spec}' is excluded")
    return photos


def _source_photo(
    path: str, relative: str, root: str, capture_key: str, options: MakeDatasetOptions
) -> SourcePhoto:
    source_id = make_source_id(relative)
    group = source_group_of(relative, root)
    # A photo that is its own capture group hashes as before (its id), so older data sets
    # keep their splits.
    key_id = source_id if capture_key == relative else make_source_id(capture_key)
    split = assign_split(key_id, options.seed, options.val_fraction, options.test_fraction)
    if group in options.test_only_groups:
        split = "test"
    return SourcePhoto(path, relative, source_id, group, split)
