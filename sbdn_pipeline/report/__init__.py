"""Looking at results: blur overlays, ``sbdn summarize`` and the ``sbdn report`` HTML page.

- :mod:`.overlays`: the photo with blurred pixels tinted red and regions boxed (pure numpy).
- :mod:`.tables`: read the detect job's Parquet output, every run or one.
- :mod:`.summary`: counts, blur rate, area quantiles, error reasons (text and JSON).
- :mod:`.html_report`: one self-contained HTML page (inline CSS, SVG charts, data: images).
"""
