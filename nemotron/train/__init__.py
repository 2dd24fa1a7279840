"""Training on Megatron-Core: model building, data, checkpoints, metrics and the loop.

Everything here runs inside the training processes (one per rank) that the stage steps
launch; torch and megatron are imported only in these modules.
"""
