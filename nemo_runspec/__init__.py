"""Run infrastructure for nemotron: artifacts, registries, lineage, env.toml, launchers.

Nothing here knows about language models. Importing the package registers the
``${art:NAME,FIELD}`` OmegaConf resolver, so plain OmegaConf and Hydra configs can use it.
"""

from nemo_runspec.resolver import register_art_resolver

register_art_resolver()
