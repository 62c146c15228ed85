"""The package's layout: which wing may import which, read from the source with `ast`.

The tree is the architecture (README "Where the code lives"): a ground floor (`errors`,
`fileio`, `memory`), then `media` and `model` and `perceptual` on it, then `applying` and
`training` (which never import each other), then `serve` and `cli` at the top. An import that
goes against this table fails here, so the picture stays true.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "stylecbn"
GROUND = "ground"

# wing -> the wings its modules may import (itself always included)
ALLOWED = {
    GROUND: {GROUND},
    "media": {GROUND},
    "model": {GROUND},
    "perceptual": {GROUND},
    "applying": {GROUND, "media", "model", "perceptual"},
    "training": {GROUND, "media", "model", "perceptual"},
    "serve": {GROUND, "media", "model", "perceptual", "applying"},
    "cli": {GROUND, "media", "model", "perceptual", "applying", "training", "serve"},
    # the package's lazy front door and `python -m stylecbn`
    "top": {GROUND, "cli"},
    # stylecbn/network.py: where model files saved before the wings find the network class
    "compat": {"model"},
}
GROUND_MODULES = {"backend", "errors", "fileio", "memory"}
TOP_MODULES = {"__init__", "__main__"}
COMPAT_MODULES = {"network"}


def wing_of_module(dotted):
    """'stylecbn.media.reading' -> 'media'; 'stylecbn.errors' -> 'ground'; None if not ours."""
    parts = dotted.split(".")
    if parts[0] != "stylecbn":
        return None
    if len(parts) == 1:
        return "top"
    head = parts[1]
    if head in GROUND_MODULES:
        return GROUND
    if head in TOP_MODULES:
        return "top"
    if head in COMPAT_MODULES:
        return "compat"
    return head


def module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__" and len(parts) > 2:
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path):
    """Every stylecbn module a file imports, at any depth (function-level imports too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" \
        else module_name(path)
    if path.name == "__init__.py" and path.parent == PACKAGE:
        package = "stylecbn"
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if not (target == "stylecbn" and [a.name for a in node.names] == ["__version__"]):
                found.append((target, node.lineno))
            # `from stylecbn import media` imports the module stylecbn.media
            found += [(f"{target}.{alias.name}", node.lineno) for alias in node.names
                      if (PACKAGE.parent / (target + "." + alias.name).replace(".", "/")).exists()
                      or (PACKAGE.parent / f"{(target + '.' + alias.name).replace('.', '/')}.py")
                      .exists()]
    # `from stylecbn import __version__` reads the package's version: allowed everywhere
    return [(name, line) for name, line in found if name.split(".")[0] == "stylecbn"]


def source_files():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_belongs_to_a_wing():
    unknown = [str(p.relative_to(PACKAGE)) for p in source_files()
               if wing_of_module(module_name(p)) not in ALLOWED]
    assert not unknown, f"modules outside every wing (add them to a wing or to ALLOWED): {unknown}"


def test_the_root_holds_only_the_ground_floor_and_the_wings():
    loose = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert set(loose) == GROUND_MODULES | TOP_MODULES | COMPAT_MODULES, loose


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    wing = wing_of_module(module_name(path))
    allowed = ALLOWED[wing] | {wing}
    bad = [f"line {line}: {name} ({wing_of_module(name)})"
           for name, line in imported_modules(path) if wing_of_module(name) not in allowed]
    assert not bad, f"{path.relative_to(PACKAGE)} ({wing}) imports against the layers: {bad}"


def test_the_checker_sees_a_bad_import(tmp_path, monkeypatch):
    """The table is enforced: a training module importing the applying wing is caught."""
    fake = PACKAGE / "training" / "config.py"
    source = "def f():\n    from stylecbn.applying.stylize import Stylizer\n"
    monkeypatch.setattr(Path, "read_text", lambda self, **kw: source)
    names = imported_modules(fake)
    assert ("stylecbn.applying.stylize", 2) in names
    assert wing_of_module("stylecbn.applying.stylize") not in ALLOWED["training"]


def _fresh(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=PACKAGE.parent)


def _assert_loads_no_keras(code):
    """Run `code` in a fresh interpreter and check that it imported no Keras, TensorFlow or JAX."""
    result = _fresh(
        code + "import sys\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax') if m in sys.modules))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]"


def test_import_help_and_usage_errors_load_no_keras():
    """`import stylecbn`, `stylecbn --help`, every command's `--help` and usage errors answer
    without importing Keras or TensorFlow: the heavy parts load only when work starts."""
    _assert_loads_no_keras(
        "import stylecbn\n"
        "from click.testing import CliRunner\n"
        "from stylecbn.cli import main\n"
        "from stylecbn.cli.root import COMMANDS\n"
        "calls = [['--help']] + [[name, '--help'] for name in COMMANDS] + [\n"
        "    ['apply', 'missing.jpg'], ['apply', 'x.jpg', '--strength', '2'],\n"
        "    ['export'], ['train', '--steps', 'many'], ['sheet', 'x.jpg'], ['nosuchcommand']]\n"
        "for args in calls:\n"
        "    result = CliRunner().invoke(main, args)\n"
        "    assert result.exit_code == (0 if '--help' in args else 2), (args, result.output)\n"
    )


def test_the_python_api_is_quiet():
    """TensorFlow's native start-up lines (oneDNN, CUDA stubs, cuInit) stay off stderr when
    the Python API loads Keras, unless the user set TensorFlow's own log variables."""
    code = (
        "import os\n"
        "for name in ('TF_CPP_MIN_LOG_LEVEL', 'TF_CPP_MAX_VLOG_LEVEL', 'TF_CPP_VMODULE'):\n"
        "    os.environ.pop(name, None)\n"
        "import stylecbn\n"
        "net = stylecbn.build_network(num_styles=2)\n"
        "import numpy as np\n"
        "print(tuple(net((np.zeros((1, 8, 8, 3), 'float32'), np.array([1]))).shape))\n"
    )
    result = _fresh(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "(1, 8, 8, 3)"
    assert result.stderr == ""
    # asking TensorFlow for its messages gets them; asking for quiet (3) stays quiet
    loud = _fresh(code.replace("import stylecbn\n",
                               "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '0'\nimport stylecbn\n"))
    assert loud.returncode == 0 and loud.stderr != ""
    quiet = _fresh(code.replace("import stylecbn\n",
                                "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\nimport stylecbn\n"))
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_public_api_names():
    import stylecbn

    expected = {"load_model", "save_model", "build_network", "StyleTransferNetwork",
                "TrainingConfig", "Stylizer", "Blend", "train", "ConditionalBatchNormalization",
                "ConditionalInstanceNormalization", "ConditionalResidualBlock"}
    assert expected <= set(stylecbn.__all__)


def test_presets_and_training_config_load_no_keras():
    """The preset table is plain data: checking a training config's preset needs no Keras."""
    _assert_loads_no_keras(
        "from stylecbn.model.presets import PRESETS\n"
        "from stylecbn.training.config import TrainingConfig\n"
        "TrainingConfig(preset='fast')\n"
    )


FLAG = re.compile(r"(?<![\w-])--[a-z]")


def _message_texts(node):
    """The literal text of the strings and f-strings inside `node`."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
            yield inner.value


def test_library_errors_name_arguments_not_command_line_flags():
    """A Python caller reads the names it passed ("content folder x does not exist"), not the
    options of a command it never ran; `cli/` and `serve/` speak to command-line users."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        wing = wing_of_module(module_name(path))
        if wing in ("cli", "serve", "top"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            logged = (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                      and node.func.attr in ("log", "warn"))
            if isinstance(node, ast.Raise) or logged:
                found += [f"{path.relative_to(PACKAGE)}:{node.lineno}: {text!r}"
                          for text in _message_texts(node) if FLAG.search(text)]
    assert found == []


def test_content_photos_error_names_the_folder_not_a_flag(tmp_path):
    from stylecbn.errors import DataError
    from stylecbn.training.photos import ContentPhotos

    with pytest.raises(DataError) as error:
        ContentPhotos(tmp_path / "x")
    assert str(error.value).startswith(f"content folder {tmp_path / 'x'} does not exist; ")
