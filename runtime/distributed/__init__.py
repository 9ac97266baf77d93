"""Data-parallel training on Ray (``pip install "symgrad[ray]"``).

    from symgrad.runtime.distributed import RayTrainer
"""
from .trainer import RayTrainer, shard_bounds

__all__ = ["RayTrainer", "shard_bounds"]
