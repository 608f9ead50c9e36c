"""Read, extract, normalise and write subtomograms, particle lists and tables."""

from ._annotate import write_particle_columns
from ._copick import read_copick_picks, read_copick_tomogram, write_copick_picks
from ._extract import ExtractedSubtomograms, box_bounds, extract_subtomograms
from ._labels import LabelsTable, read_labels_table, write_labels_table
from ._mrc import Subtomograms, read_subtomograms, read_voxel_size
from ._normalize import SubtomogramNormalizer, lowpass_filter, normalize_subtomograms
from ._particles import (
    ANGLE_CONVENTIONS,
    PARTICLE_LIST_FORMATS,
    STAR_LABEL_COLUMNS,
    ParticleListFormatError,
    ParticleTable,
    RelionTomogram,
    SeveralTomogramsError,
    detect_particle_list_format,
    read_csv_particles,
    read_particle_list,
    read_relion_tomograms,
    read_shrec19,
    read_shrec21,
    read_star,
)
from ._write import write_particle_table, write_predictions, write_subtomograms

__all__ = [
    "ANGLE_CONVENTIONS",
    "PARTICLE_LIST_FORMATS",
    "STAR_LABEL_COLUMNS",
    "ExtractedSubtomograms",
    "LabelsTable",
    "ParticleListFormatError",
    "ParticleTable",
    "RelionTomogram",
    "SeveralTomogramsError",
    "SubtomogramNormalizer",
    "Subtomograms",
    "box_bounds",
    "detect_particle_list_format",
    "extract_subtomograms",
    "lowpass_filter",
    "normalize_subtomograms",
    "read_copick_picks",
    "read_copick_tomogram",
    "read_csv_particles",
    "read_labels_table",
    "read_particle_list",
    "read_relion_tomograms",
    "read_shrec19",
    "read_shrec21",
    "read_star",
    "read_subtomograms",
    "read_voxel_size",
    "write_copick_picks",
    "write_labels_table",
    "write_particle_columns",
    "write_particle_table",
    "write_predictions",
    "write_subtomograms",
]
