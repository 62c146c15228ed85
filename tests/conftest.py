import os
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# The suite compares Stylizer outputs with the Keras model's to the float rounding: it runs
# them in Keras (the default "auto" would pick bfloat16 on a CPU that has it, and subprocesses
# inherit this). tests/test_runtimes.py asks for the other runtimes by name and checks each
# against Keras within its tolerance.
os.environ["STYLECBN_RUNTIME"] = "keras"

# Property-based tests: in CI the same examples every run (derandomize), so a failure there
# reproduces; locally new ones each run, which explores more over time.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Real images for slow tests: ../shared/data beside the repository, absent on some machines.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """The shared data folder, or a clean skip where it is absent."""
    if not (SHARED_DATA / "paintings").is_dir() or not (SHARED_DATA / "content").is_dir():
        pytest.skip(f"real images not available ({SHARED_DATA} is absent)")
    return SHARED_DATA


@pytest.fixture(scope="module")
def plenty_of_memory():
    """Training refuses a run larger than the machine's available memory, read when it starts
    (1.5 GB for even the tiniest run; see stylecbn.memory.training_memory): on a busy machine
    that check would fail a test by chance. Tests that train pretend 64 GB are available;
    the memory tests set their own figure over this one. Module-wide, for the runs that
    module fixtures share."""
    from stylecbn.training import preflight

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(preflight, "available_memory", lambda: 64_000_000_000)
        yield


@pytest.fixture
def bad_styles_folders(tmp_path):
    """Styles folders that training must refuse, by what is wrong with them: `empty`,
    `no_images` (a text file only: notes.txt) and `corrupt` (an unreadable broken.png)."""
    folders = {name: tmp_path / name for name in ("empty", "no_images", "corrupt")}
    for folder in folders.values():
        folder.mkdir()
    (folders["no_images"] / "notes.txt").write_text("not an image")
    (folders["corrupt"] / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return folders
