"""Import TensorFlow without its C++ start-up chatter on the notebook's stderr."""

from __future__ import annotations

import os
import sys
import tempfile


def import_tensorflow_quietly() -> None:
    """Import ``tensorflow`` and list its devices once, with stderr (file descriptor 2) muted.

    TensorFlow 2.2x writes lines such as "Could not find cuda drivers" straight to file
    descriptor 2 before any logging setting applies, and Jupyter shows them in the first cell.
    What TensorFlow prints is kept in a temporary file and replayed if the import fails, so a
    broken installation still explains itself.
    """
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (some embedded interpreters)
        import tensorflow  # noqa: F401

        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            # The first device query probes CUDA and logs its failure on a CPU-only machine.
            tf.config.list_physical_devices()
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
