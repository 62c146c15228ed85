"""Starting Keras and its backend without TensorFlow's native start-up chatter.

TensorFlow's C++ layer prints oneDNN, CUDA-stub and CPU-feature lines (and, on machines
without a GPU, a red "failed call to cuInit" error) straight to file descriptor 2 when it
loads and when it first touches a device, past Python's logging and before
TF_CPP_MIN_LOG_LEVEL takes effect for some of them. They would bury the one-line messages
the CLI promises and clutter a notebook. The wings that use Keras call `start_quietly()` when
they are imported, so the command line and the Python API are both quiet by default; a user
who sets TensorFlow's own log variables gets TensorFlow's own behaviour.
"""

import os
import sys
import tempfile

# TensorFlow's log settings: any of them set means the user chose what to see.
TF_LOG_VARIABLES = ("TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE")


def start_quietly():
    """Import Keras (and its backend) once, keeping the native start-up output off the
    terminal: it is captured and shown only if starting fails. Does nothing when Keras is
    already imported; imports plainly when the user set one of `TF_LOG_VARIABLES`."""
    if "keras" in sys.modules:
        return
    if any(name in os.environ for name in TF_LOG_VARIABLES):
        import keras  # noqa: F401

        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # later messages too: errors reach Python anyway
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras

            keras.ops.convert_to_numpy(keras.ops.ones((1,)))  # the first device touch
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.buffer.write(captured.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
