"""`sbdn demo`: the detect job with the shipped models on a corpus derived at run time."""

from __future__ import annotations

import os

import click

from sbdn_pipeline.cli.detect import detect
from sbdn_pipeline.cli.errors import fail


@click.command()
@click.option("--workdir", default="sbdn-demo", show_default=True,
              help="Folder for the demo photos (photos/) and the detect output (out/).")
@click.pass_context
def demo(ctx: click.Context, workdir: str) -> None:
    """Run the detect job with the shipped models on a small corpus of real photos.

    \b
    The corpus is derived at run time from the photos bundled inside scikit-image (nothing is
    downloaded); a few are blurred on purpose and one file is broken, so both model branches
    and the errors table show up. Needs the [demo] extra.

    \b
    Example:
      sbdn demo --workdir /tmp/sbdn-demo
    """
    import glob

    import pyarrow.parquet as pq

    from sbdn_pipeline import demo as demo_corpus
    from sbdn_pipeline import schemas

    photos = os.path.join(workdir, "photos")
    output = os.path.join(workdir, "out")
    try:
        written = demo_corpus.write_demo_corpus(photos)
    except RuntimeError as exc:
        fail(str(exc))
    click.echo(f"demo corpus: {len(written)} files in {photos}", err=True)
    run_id = f"demo-{os.getpid()}"
    ctx.invoke(detect, arguments=(photos,), output=output, run_id=run_id,
               overlays_dir=os.path.join(workdir, "overlays"))
    results = {}
    for path in glob.glob(os.path.join(output, schemas.RESULTS_DIR,
                                       f"{schemas.RUN_FOLDER_PREFIX}{run_id}",
                                       f"*{schemas.PARQUET_SUFFIX}")):
        for row in pq.read_table(path).to_pylist():
            results[os.path.basename(row[schemas.IMAGE_URI])] = row
    click.echo(f"\n{'file':28} {'P(blurry)':>9} {'verdict':8} {'blurred area':>12}  what it is")
    for item in written:
        row = results.get(item.file_name)
        if row is None:
            click.echo(f"{item.file_name:28} {'-':>9} {'error':8} {'-':>12}  {item.treatment}")
            continue
        verdict = "blurry" if row[schemas.IS_BLURRY] else "sharp"
        area = row[schemas.BLUR_AREA_FRACTION]
        area_text = f"{area:.0%}" if area is not None else "-"
        click.echo(f"{item.file_name:28} {row[schemas.BLUR_PROBABILITY]:9.3f} {verdict:8} "
                   f"{area_text:>12}  {item.treatment}")
