"""The CPU patches: still needed by the installed Megatron-Core, and doing what they claim."""

from helpers import run_python

from nemotron.train.cpu_compat import stale_patches


def test_every_patch_still_targets_cuda_only_code_upstream():
    # Fails after an upgrade that fixes one of these spots: then delete that patch.
    assert stale_patches() == []


def test_patches_make_megatron_build_and_run_on_cpu_and_rng_forks_are_reproducible():
    done = run_python("""
import os, torch
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(__import__("random").randint(20000, 40000)))
from nemotron.train import cpu_compat
cpu_compat.apply(); cpu_compat.apply()  # idempotent
assert torch.cuda.current_device() == torch.device("cpu")
from megatron.core.transformer.utils import get_default_causal_mask
assert get_default_causal_mask(3).device.type == "cpu"
torch.distributed.init_process_group("gloo", rank=0, world_size=1)
from megatron.core import parallel_state
parallel_state.initialize_model_parallel(1)
cpu_compat.manual_seed(7, 0)
from megatron.core.tensor_parallel.random import get_cuda_rng_tracker
tracker = get_cuda_rng_tracker()
saved = tracker.get_states()
with tracker.fork():
    a = torch.rand(3)
outside = torch.rand(3)
tracker.set_states(saved)
with tracker.fork():
    b = torch.rand(3)
assert torch.equal(a, b) and not torch.equal(a, outside)
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
emb = RotaryEmbedding(kv_channels=16, rotary_percent=1.0, use_cpu_initialization=True)
assert emb(8).device.type == "cpu"
print("ok")
""", timeout=180)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr[-2000:]
