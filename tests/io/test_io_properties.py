"""Property-based checks of extraction and table round trips (hypothesis)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fscc_sklearn.io import (
    ParticleTable,
    extract_subtomograms,
    read_particle_list,
    write_particle_table,
)

SHAPE_ZYX = (7, 9, 11)
TOMO = np.random.default_rng(3).normal(size=SHAPE_ZYX).astype(np.float32)


@settings(max_examples=60, deadline=None)
@given(
    box=st.integers(1, 8),
    centres=st.lists(
        st.tuples(st.integers(0, 10), st.integers(0, 8), st.integers(0, 6)),
        min_size=1,
        max_size=6,
    ),
)
def test_pad_matches_padded_reference(box, centres):
    coords = np.array(centres, dtype=float)  # (x, y, z)
    res = extract_subtomograms(TOMO, coords, box=box, border="pad", pad_value=-7.0)
    half = box // 2
    reference = np.pad(TOMO, box, constant_values=-7.0)
    for k, (x, y, z) in enumerate(centres):
        z0, y0, x0 = z - half + box, y - half + box, x - half + box
        expected = reference[z0 : z0 + box, y0 : y0 + box, x0 : x0 + box]
        np.testing.assert_array_equal(res.X[k], expected)
    skip = extract_subtomograms(TOMO, coords, box=box, border="skip")
    assert skip.n_skipped == res.n_padded
    assert sorted(skip.kept.tolist() + skip.skipped.tolist()) == list(
        range(len(centres))
    )
    np.testing.assert_array_equal(skip.X, res.X[skip.kept])


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=40, deadline=None)
@given(
    coords=hnp.arrays(
        np.float64, st.tuples(st.integers(0, 5), st.just(3)), elements=finite
    ),
    fmt=st.sampled_from(["csv", "star"]),
    data=st.data(),
)
def test_table_round_trip_is_exact(tmp_path_factory, coords, fmt, data):
    labels = data.draw(
        st.lists(
            st.text(
                alphabet=st.characters(codec="ascii", exclude_characters="\r\n\"'"),
                max_size=6,
            ),
            min_size=len(coords),
            max_size=len(coords),
        )
    )
    table = ParticleTable(coords=coords, labels=labels)
    path = tmp_path_factory.mktemp("rt") / f"t.{fmt}"
    write_particle_table(path, table)
    back = read_particle_list(path, format=fmt)
    np.testing.assert_array_equal(back.coords, coords)
    assert back.labels.tolist() == [
        lab.strip() if fmt == "csv" else lab for lab in labels
    ]
