"""Starting Keras and its backend without TensorFlow's native start-up chatter.

TensorFlow's C++ layer prints oneDNN, CUDA-stub and CPU-feature lines (and, on machines
without a GPU, a red "failed call to cuInit" error) straight to file descriptor 2 when it
loads and when it first touches a device, past Python's logging and before
TF_CPP_MIN_LOG_LEVEL takes effect for some of them. They would bury the one-line messages
the CLI promises and clutter a notebook. Every module that imports Keras calls `start_quietly()`
first (modules without Keras, like the settings and the presets, stay light), so the command
line and the Python API are both quiet by default; a user
who sets TensorFlow's own log variables to see its messages gets TensorFlow's own behaviour.
"""

import os
import sys
import tempfile

def asked_for_tensorflow_logs():
    """Whether the user set TensorFlow's own log variables to see its messages: a minimum
    level of 0 or 1 (info, warnings), or verbose logging. (A level of 2 or 3 asks for quiet,
    which is what `start_quietly` gives.)"""
    return (os.environ.get("TF_CPP_MIN_LOG_LEVEL", "").strip() in ("0", "1")
            or "TF_CPP_MAX_VLOG_LEVEL" in os.environ or "TF_CPP_VMODULE" in os.environ)


def start_quietly():
    """Import Keras (and its backend) once, keeping the native start-up output off the
    terminal: it is captured and shown only if starting fails. Does nothing when Keras is
    already imported; imports plainly when `asked_for_tensorflow_logs()`."""
    if "keras" in sys.modules:
        return
    if asked_for_tensorflow_logs():
        import keras  # noqa: F401

        return
    # later messages too (errors reach Python as exceptions); the processes this one starts
    # inherit the setting, and start quietly as well
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
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
