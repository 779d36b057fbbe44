"""The data layer: file formats, the in-memory dataset, splits, tasks and transforms."""

from calosim.data.dataset import (
    ZDCDataset,
    describe_file,
    pdg_name,
    read_dataset,
    read_particles,
    write_dataset,
)
from calosim.data.formats import (
    ATTR_CREATOR,
    ATTR_SEED,
    ATTR_SIMULATOR,
    ATTR_VERSION,
    DEFAULT_CHUNK_SIZE,
    FORMATS,
    DataChunk,
    DataSource,
    ParticleChunk,
    ResponseWriter,
    atomic_output,
    count_particles,
    detect_format,
    iter_data_chunks,
    iter_particle_chunks,
    npz_pair_paths,
    open_data_file,
    output_format,
)
from calosim.data.scales_file import read_scales_file, write_scales_file
from calosim.data.schema import (
    IMAGE_SIZE,
    N_ATTRIBUTES,
    N_PIXELS,
    PARTICLE_COLUMNS,
    PARTICLE_UNITS,
    RESPONSE_SHAPE,
    as_particle_array,
)
from calosim.data.tasks import (
    energy_task_edges,
    energy_task_indices,
    energy_task_splits,
    split_indices,
)
from calosim.data.transforms import (
    ALICE_DEPLOYED,
    ParticleStandardiser,
    counts_from_log,
    log_counts,
)

__all__ = [
    "ALICE_DEPLOYED", "ATTR_CREATOR", "ATTR_SEED", "ATTR_SIMULATOR", "ATTR_VERSION",
    "DEFAULT_CHUNK_SIZE", "FORMATS", "IMAGE_SIZE", "N_ATTRIBUTES", "N_PIXELS",
    "PARTICLE_COLUMNS", "PARTICLE_UNITS", "RESPONSE_SHAPE",
    "DataChunk", "DataSource", "ParticleChunk", "ParticleStandardiser", "ResponseWriter",
    "ZDCDataset",
    "as_particle_array", "atomic_output", "count_particles", "counts_from_log",
    "describe_file", "detect_format", "energy_task_edges", "energy_task_indices",
    "energy_task_splits", "iter_data_chunks", "iter_particle_chunks", "log_counts",
    "npz_pair_paths", "open_data_file", "output_format", "pdg_name", "read_dataset",
    "read_particles", "read_scales_file", "split_indices", "write_dataset",
    "write_scales_file",
]
