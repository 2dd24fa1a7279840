"""Stage-2 reinforcement learning: rewards, the GRPO backends (TRL locally, NeMo-RL on clusters)."""
