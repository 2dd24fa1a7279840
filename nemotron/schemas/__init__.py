"""One schema per config group (``model``, ``train``, ``optimizer``, ``data_prep``, ``rl``,
``tokenizer``) and per step (which groups a step reads, plus the rules across groups).

Torch-free, so the driver process validates a composed config before any training process
starts. ``launcher``, ``tracking`` and ``artifacts`` are run infrastructure:
:mod:`nemo_runspec.groups`.
"""
