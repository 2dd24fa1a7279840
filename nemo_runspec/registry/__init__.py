"""Registry backends: the interface, records and the file-system manifest."""

from nemo_runspec.registry.backend import ArtifactBackend
from nemo_runspec.registry.manifest import ManifestRegistry
from nemo_runspec.registry.record import ArtifactRecord, record_field

__all__ = ["ArtifactBackend", "ArtifactRecord", "ManifestRegistry", "record_field"]
