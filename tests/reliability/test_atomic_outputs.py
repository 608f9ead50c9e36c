"""A writer killed mid-way never leaves a torn or clobbered output file."""

import subprocess
import sys
import textwrap

import numpy as np

from fscc_sklearn.io import read_particle_list, read_subtomograms, write_subtomograms

_KILLED_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import fscc_sklearn.io._write as w
    from fscc_sklearn.io import write_predictions, write_subtomograms

    def die(*args, **kwargs):  # the data is in the temporary file: now die
        os.kill(os.getpid(), signal.SIGKILL)

    w.os.replace = w.os.link = die
    folder, table = sys.argv[1], sys.argv[2]
    child = os.fork()  # one interpreter start-up for two killed writers
    if child == 0:
        write_subtomograms(folder, np.full((3, 4, 4, 4), 9, np.float32),
                           voxel_size=None, overwrite=True)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    print("child", os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1, flush=True)
    write_predictions(table, [[1, 2, 3]], ["new"], overwrite=True)
    """
)


def test_killed_writers_leave_previous_outputs_intact(tmp_path):
    folder = tmp_path / "parts"
    X = np.ones((3, 4, 4, 4), np.float32)
    write_subtomograms(folder, X, voxel_size=None)
    table = tmp_path / "pred.csv"
    table.write_text("x,y,z,label\n4,5,6,old\n")

    done = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(folder), str(table)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr
    assert done.stdout.split() == ["child", "9"]  # both writers were killed

    # the killed processes left hidden temporaries, which readers ignore
    assert list(folder.glob(".*.tmp")) and list(tmp_path.glob(".pred.csv.*.tmp"))
    np.testing.assert_array_equal(read_subtomograms(folder).X, X)
    assert read_particle_list(table).labels.tolist() == ["old"]
