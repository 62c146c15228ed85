import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Real images for slow tests: ../shared/data beside the repository, absent on some machines.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """The shared data folder, or a clean skip where it is absent."""
    if not (SHARED_DATA / "paintings").is_dir() or not (SHARED_DATA / "content").is_dir():
        pytest.skip(f"real images not available ({SHARED_DATA} is absent)")
    return SHARED_DATA
