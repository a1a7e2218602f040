"""Synthetic blur: kernels, regions, degradations and recipes (pure numpy/scipy/Pillow, no Beam).

The entry point is :func:`sbdn_pipeline.synth.recipes.synthesize`.
"""
