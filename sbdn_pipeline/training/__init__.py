"""Training and evaluation of the blur networks.

Modules: ``reader`` (tf.data input from the synthetic TFRecords), ``train`` (training job),
``metrics`` (pure-numpy metrics), ``baselines`` (Laplacian blur detectors), ``evaluate``
(evaluation job: entry point and models; its loops ``dataset_evaluation`` and
``folder_evaluation``, its ``scorers``, ``evaluation_inputs`` and ``evaluation_outputs``) and
``plots`` (figures). Import the module you need; this package imports nothing heavy by itself.
"""
