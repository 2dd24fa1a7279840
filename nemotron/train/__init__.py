"""Training on Megatron-Core: model building, data, checkpoints, metrics and the loop.

Everything here runs inside the training processes (one per rank) that the stage steps
launch, except ``child_process``, which launches one; torch and megatron are imported only in
these modules.
"""
