"""Nemotron-H: Megatron-Core's hybrid model (Mamba-2 ``M``, attention ``*``, dense MLP ``-`` and
MoE ``E`` layers in the order of ``hybrid_override_pattern``).

On GPUs with TransformerEngine the stack is Megatron-Core's own ``mamba_stack_spec`` (TE
linears with fused norms, grouped-GEMM experts) and the mixer runs mamba_ssm's kernels. Else
the stack is built here from Megatron-Core's local modules (the same layers, unfused norms),
and on CPU the mixer runs the reference kernels that ``cpu_compat`` puts in place. The local
layers map their norms onto the TE names in checkpoints (``sharded_state_dict_keys_map``), so a
checkpoint moves between the two specs.

Megatron-Core after 0.16 renames ``MambaModel`` to ``HybridModel`` (``mamba_stack_spec`` to
``hybrid_stack_spec``, ``hybrid_override_pattern`` to ``hybrid_layer_pattern``) and keeps the
old names as deprecated wrappers; :func:`hybrid_model` builds through whichever it finds.
"""

from __future__ import annotations

from nemotron.schemas.model import ModelConfig


def stack_spec(model: ModelConfig, use_te: bool):
    """The layer specs of the hybrid stack: TransformerEngine's, or Megatron-Core's local modules."""
    if use_te:
        from megatron.core.models.mamba.mamba_layer_specs import mamba_stack_spec

        return _with_mixer_params(mamba_stack_spec, model)
    from megatron.core.fusions.fused_bias_dropout import get_bias_dropout_add
    from megatron.core.models.backends import LocalSpecProvider
    from megatron.core.models.gpt.moe_module_specs import get_moe_module_spec
    from megatron.core.ssm.mamba_block import MambaStack, MambaStackSubmodules
    from megatron.core.ssm.mamba_layer import MambaLayer, MambaLayerSubmodules
    from megatron.core.ssm.mamba_mixer import MambaMixer, MambaMixerSubmodules
    from megatron.core.ssm.mlp_layer import MLPLayer
    from megatron.core.transformer.attention import SelfAttention, SelfAttentionSubmodules
    from megatron.core.transformer.enums import AttnMaskType
    from megatron.core.transformer.mlp import MLP, MLPSubmodules
    from megatron.core.transformer.spec_utils import ModuleSpec
    from megatron.core.transformer.transformer_layer import (
        MoETransformerLayer,
        TransformerLayer,
        TransformerLayerSubmodules,
    )

    local = LocalSpecProvider()
    norm = local.layer_norm(rms_norm=model.normalization == "RMSNorm", for_qk=False)
    mamba_layer = ModuleSpec(module=MambaLayer, submodules=MambaLayerSubmodules(
        norm=norm,
        mixer=ModuleSpec(module=MambaMixer, params=_mixer_params(model), submodules=MambaMixerSubmodules(
            in_proj=local.column_parallel_linear(), out_proj=local.row_parallel_linear())),
        mamba_bda=get_bias_dropout_add,
        sharded_state_dict_keys_map={"norm.": "mixer.in_proj.layer_norm_"}))
    attention_layer = ModuleSpec(module=TransformerLayer, submodules=TransformerLayerSubmodules(
        input_layernorm=norm,
        self_attention=ModuleSpec(module=SelfAttention, params={"attn_mask_type": AttnMaskType.causal},
                                  submodules=SelfAttentionSubmodules(
                                      linear_qkv=local.column_parallel_linear(),
                                      core_attention=local.core_attention(),
                                      linear_proj=local.row_parallel_linear())),
        self_attn_bda=get_bias_dropout_add,
        sharded_state_dict_keys_map={"input_layernorm.": "self_attention.linear_qkv.layer_norm_"}))
    mlp_layer = ModuleSpec(module=MLPLayer, submodules=TransformerLayerSubmodules(
        pre_mlp_layernorm=norm,
        mlp=ModuleSpec(module=MLP, submodules=MLPSubmodules(linear_fc1=local.column_parallel_linear(),
                                                            linear_fc2=local.row_parallel_linear())),
        mlp_bda=get_bias_dropout_add,
        sharded_state_dict_keys_map={"pre_mlp_layernorm.": "mlp.linear_fc1.layer_norm_"}))
    moe = get_moe_module_spec(use_te=False, num_experts=model.num_moe_experts or 1, moe_grouped_gemm=False)
    moe_layer = ModuleSpec(module=MoETransformerLayer, submodules=TransformerLayerSubmodules(
        pre_mlp_layernorm=norm, mlp=moe, mlp_bda=get_bias_dropout_add))
    return ModuleSpec(module=MambaStack, submodules=MambaStackSubmodules(
        mamba_layer=mamba_layer, attention_layer=attention_layer, mlp_layer=mlp_layer, moe_layer=moe_layer))


def _mixer_params(model: ModelConfig) -> dict:
    """The mixer's own arguments (not in TransformerConfig): conv width and expansion."""
    params = {"d_conv": model.mamba_conv_kernel, "expand": model.mamba_expand}
    return {key: value for key, value in params.items() if value}


def _with_mixer_params(spec, model: ModelConfig):
    """Megatron-Core's TE stack spec with this model's mixer arguments (conv width, expansion)."""
    import copy

    if not _mixer_params(model):
        return spec
    spec = copy.deepcopy(spec)
    mixer = spec.submodules.mamba_layer.submodules.mixer
    mixer.params = {**(mixer.params or {}), **_mixer_params(model)}
    return spec


def hybrid_model(config, model: ModelConfig, spec, vocab_size: int, pre_process: bool = True,
                 post_process: bool = True):
    """Megatron-Core's hybrid model class, under its name in the installed release."""
    common = dict(config=config, vocab_size=vocab_size, max_sequence_length=model.seq_length,
                  pre_process=pre_process, post_process=post_process,
                  position_embedding_type=model.position_embedding_type, rotary_base=model.rotary_base,
                  share_embeddings_and_output_weights=not model.untie_embeddings_and_output_weights)
    try:
        from megatron.core.models.hybrid import HybridModel
    except ImportError:  # megatron-core <= 0.16
        from megatron.core.models.mamba.mamba_model import MambaModel

        return MambaModel(mamba_stack_spec=spec, hybrid_override_pattern=model.hybrid_override_pattern, **common)
    return HybridModel(hybrid_stack_spec=spec, hybrid_layer_pattern=model.hybrid_override_pattern, **common)
