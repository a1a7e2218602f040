"""``python -m sbdn_pipeline.cli``: the same as the ``sbdn`` console script."""

from sbdn_pipeline.cli import main

main()
