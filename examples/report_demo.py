"""A complete demo of looking at results: photos -> two detect runs -> HTML report -> screenshot.

    python examples/report_demo.py --workdir /tmp/sbdn-report-demo
    python examples/report_demo.py --workdir /tmp/d --screenshot docs/report-screenshot.png \
        --overlay-example docs/overlay-example.jpg

1. Writes the demo corpus (``sbdn_pipeline.demo``: scikit-image's bundled public-domain / CC0
   photos, four of them blurred on purpose, one broken file; needs scikit-image) in two
   batches.
2. Runs ``sbdn detect`` on the first batch, adds the second batch and runs
   ``sbdn detect --skip-existing --overlays DIR``: an incremental run that processes only the
   new files and writes overlay JPEGs.
3. Writes ``report.html`` with ``sbdn report`` and prints ``sbdn summarize``.
4. With ``--screenshot``, renders the page in headless Chromium (/usr/bin/chromium).

Models: ``--classifier``/``--identifier`` when given, else the shipped defaults when there are
any, else a pair of Laplacian-energy baseline models built here with hand-set weights (no
training): they call an image blurry when much of it lacks fine detail, so smooth photos (sky,
the moon) are called blurry too. That is the classic baseline's known weakness, which the
trained models exist to fix; the demo is about the report, not the verdicts.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

CHROMIUM = "/usr/bin/chromium"
BASELINE_INPUT = 256
BASELINE_STRIDE = 4
# Local mean |Laplacian| (grey levels, at 256 px) below which a patch counts as blurred, and
# the share of blurred content above which the image is called blurry.
ENERGY_THRESHOLD = 4.0
BLURRED_SHARE = 0.30
# Second batch: added after the first run, so the incremental run processes only these.
SECOND_BATCH = ("_blurred.jpg", "download_error.jpg", "rocket.jpg", "moon.jpg")
# Left out: scikit-image states no licence for this photo (Middlebury stereo benchmark); the
# others are public domain or CC0, so screenshots of the report can be published.
LEFT_OUT = ("motorcycle_left.jpg",)


def build_baseline_models(folder: str) -> dict[str, str]:
    """Save a Laplacian-energy classifier and identifier (.keras, hand-set weights)."""
    import keras

    laplacian = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32)

    def blurred_map(inputs: keras.KerasTensor) -> tuple[keras.KerasTensor, keras.KerasTensor]:
        grey = keras.layers.Conv2D(1, 1, use_bias=False)
        edges = keras.layers.Conv2D(2, 3, padding="same", use_bias=False)
        energy = keras.layers.ReLU()(edges(grey(inputs)))  # +L and -L: they sum to |L|
        local = keras.layers.AveragePooling2D(BASELINE_STRIDE)(energy)
        local = keras.layers.AveragePooling2D(4, strides=1, padding="same")(local)
        decide = keras.layers.Conv2D(1, 1, activation="sigmoid")
        probability = decide(local)
        # Letterbox padding is black (0): "content" is 1 wherever any channel is non-zero.
        content = keras.layers.Conv2D(1, 1, use_bias=False)
        valid = keras.layers.ReLU(max_value=1.0)(content(inputs))
        valid = keras.layers.AveragePooling2D(BASELINE_STRIDE)(valid)
        grey.set_weights([np.full((1, 1, 3, 1), 1 / 3, np.float32)])
        edges.set_weights([np.stack([laplacian, -laplacian], -1)[:, :, None, :]])
        decide.set_weights([np.full((1, 1, 2, 1), -1.0, np.float32),
                            np.array([ENERGY_THRESHOLD], np.float32)])
        content.set_weights([np.ones((1, 1, 3, 1), np.float32)])
        return probability, valid

    inputs = keras.Input((BASELINE_INPUT, BASELINE_INPUT, 3))
    probability, _ = blurred_map(inputs)
    identifier = keras.Model(inputs, probability, name="energy_identifier")

    inputs = keras.Input((BASELINE_INPUT, BASELINE_INPUT, 3))
    probability, valid = blurred_map(inputs)
    blurred = keras.layers.GlobalAveragePooling2D()(keras.layers.Multiply()([probability, valid]))
    share = keras.layers.GlobalAveragePooling2D()(valid)
    # P(blurry) = sigmoid(12 * (blurred - 0.4 * content)): the blurred share of the content
    # (not of the black letterbox padding) against BLURRED_SHARE.
    decide = keras.layers.Dense(1, activation="sigmoid")
    classifier = keras.Model(inputs, decide(keras.layers.Concatenate()([blurred, share])),
                             name="energy_classifier")
    decide.set_weights([np.array([[12.0], [-12.0 * BLURRED_SHARE]], np.float32),
                        np.zeros(1, np.float32)])

    paths = {"classifier": os.path.join(folder, "energy_classifier.keras"),
             "identifier": os.path.join(folder, "energy_identifier.keras")}
    classifier.save(paths["classifier"])
    identifier.save(paths["identifier"])
    return paths


def sbdn(*args: str) -> str:
    """Run the sbdn command line in a subprocess (as a user would) and return its stdout."""
    done = subprocess.run([sys.executable, "-W", "ignore", "-m", "sbdn_pipeline.cli", *args],
                          check=True, capture_output=True, text=True)
    return done.stdout


def screenshot(html_path: str, png_path: str, width: int, height: int) -> None:
    """Render a page with headless Chromium into a PNG."""
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
             f"--screenshot={os.path.abspath(png_path)}", f"--window-size={width},{height}",
             "file://" + os.path.abspath(html_path)],
            check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    """Build the demo output, report and (optionally) screenshot and overlay example."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", required=True, help="Created; photos/, out/, overlays/.")
    parser.add_argument("--classifier", help="Classifier .keras (default: see module doc).")
    parser.add_argument("--identifier", help="Identifier .keras (default: see module doc).")
    parser.add_argument("--screenshot", help="Write a PNG of the report here (needs Chromium).")
    parser.add_argument("--overlay-example", help="Copy one overlay JPEG here.")
    parser.add_argument("--size", default="1280x2000", help="Screenshot WIDTHxHEIGHT.")
    args = parser.parse_args()

    from sbdn_pipeline import default_models, demo

    workdir = os.path.abspath(args.workdir)
    photos, later = os.path.join(workdir, "photos"), os.path.join(workdir, "later")
    output, overlays = os.path.join(workdir, "out"), os.path.join(workdir, "overlays")
    for folder in (photos, later, output, overlays):
        shutil.rmtree(folder, ignore_errors=True)
    written = demo.write_demo_corpus(later)
    os.makedirs(photos)
    for item in written:
        if item.file_name in LEFT_OUT:
            os.remove(os.path.join(later, item.file_name))
        elif not item.file_name.endswith(SECOND_BATCH):
            os.replace(os.path.join(later, item.file_name), os.path.join(photos, item.file_name))

    models: list[str] = []
    if args.classifier and args.identifier:
        models = ["--classifier", args.classifier, "--identifier", args.identifier]
    else:
        try:
            default_models.default_model("classifier")
            default_models.default_model("identifier")
        except default_models.NoDefaultModelError:
            paths = build_baseline_models(os.path.join(workdir))
            models = ["--classifier", paths["classifier"], "--identifier", paths["identifier"]]

    print(sbdn("detect", photos, "--output", output, "--run-id", "1-initial", *models))
    for name in os.listdir(later):  # the next day's photos arrive
        os.replace(os.path.join(later, name), os.path.join(photos, name))
    print(sbdn("detect", photos, "--output", output, "--run-id", "2-incremental",
               "--skip-existing", "--overlays", overlays, *models))
    html_path = os.path.join(workdir, "report.html")
    print(sbdn("report", output, "--html", html_path, "--top", "8"))
    print(sbdn("summarize", output))
    if args.screenshot:
        width, height = (int(value) for value in args.size.split("x"))
        screenshot(html_path, args.screenshot, width, height)
        print(f"screenshot: {args.screenshot}")
    if args.overlay_example:
        chosen = sorted(name for name in os.listdir(overlays) if name.endswith(".jpg"))
        from sbdn_pipeline.report import tables

        rows = tables.read_output(output).results.to_pylist()
        by_overlay = {os.path.basename(row["overlay_uri"]): row["image_uri"]
                      for row in rows if row["overlay_uri"]}
        # Prefer a partly blurred photo: it shows both the tint and what stays sharp.
        preferred = [name for name in chosen if "coffee" in by_overlay.get(name, "")]
        shutil.copyfile(os.path.join(overlays, (preferred or chosen)[0]), args.overlay_example)
        print(f"overlay example: {args.overlay_example}")


if __name__ == "__main__":
    main()
