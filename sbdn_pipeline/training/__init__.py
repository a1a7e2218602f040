"""Training and evaluation of the blur networks.

Training: ``train`` (the job: ``train(TrainConfig)``), ``config`` (``TrainConfig`` and the
per-architecture defaults), ``datasets`` (batches, augmentation, targets), ``reader`` (tf.data
input from the synthetic TFRecords), ``losses``, ``monitor`` (progress, checkpoints, history),
``export`` (best model, run summary). Evaluation: ``evaluate`` (entry point and models), its
loops ``dataset_evaluation`` and ``folder_evaluation``, its ``scorers``, ``evaluation_inputs``
and ``evaluation_outputs``; ``metrics`` (pure-numpy metrics), ``baselines`` (classic blur
detectors) and ``plots`` (figures). Import the module you need; this package imports nothing
heavy by itself.
"""
