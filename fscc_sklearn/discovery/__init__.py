"""Discovery in unlabelled picks: cluster them to find the species they hold,
and rank them to choose which to label next."""

from ._cluster import cluster_embeddings, plot_cluster, write_clusters
from ._suggest import STRATEGIES, plot_picks, suggest_labels, write_suggestions

__all__ = [
    "STRATEGIES",
    "cluster_embeddings",
    "plot_cluster",
    "plot_picks",
    "suggest_labels",
    "write_clusters",
    "write_suggestions",
]
