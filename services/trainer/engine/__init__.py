"""The training loop and its machinery: ``loop`` (the run), ``checkpoint`` (save / resume),
``weights`` (``--init-from`` and ``pack``), ``compute`` (CPU-hours, steps, images seen),
``distributed`` (torchrun), ``seeding``, ``schedules``, ``progress``, ``logging_utils`` and
``sync_batchnorm``."""
