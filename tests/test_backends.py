"""The layers and the network are backend-neutral: they run on JAX without TensorFlow."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _env(backend):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _has(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


JAX_CHECKS = (
    "one_class or one_hot or seed_defect or style_weights_mix or blend_equals "
    "or output_has_input_size_and_range[37-50] or bit_exact or per_pixel_weights_resize"
)

needs_jax = pytest.mark.skipif(not _has("jax"), reason="JAX is not installed")


@needs_jax
def test_importing_core_on_jax_does_not_import_tensorflow():
    code = (
        "import sys\n"
        "import stylecbn, stylecbn.model.layers, stylecbn.model.network, stylecbn.model.saving, stylecbn.training.config\n"
        "import stylecbn.applying.blend, stylecbn.applying.strips\n"
        "import keras\n"
        "assert keras.backend.backend() == 'jax', keras.backend.backend()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=_env("jax"), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")


@needs_jax
def test_layer_and_network_checks_pass_on_jax():
    result = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "tests/test_layers.py", "tests/test_network.py", "tests/test_modelfile.py",
            # The reference checks; the rest are backend-independent Python and take minutes
            # under JAX's op-by-op eager mode on two cores.
            "-k", JAX_CHECKS,
        ],
        cwd=ROOT, env=_env("jax"), capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
