"""Install a trained model as a built-in one: stylecbn/assets/<name>.keras.

    python tools/ship_default_model.py MODEL.keras [--float32] [--name fast]

Weights are stored in float16 (half the package size) unless --float32 is given; measure what
that changes first with `python benchmarks/half_precision.py --model MODEL.keras`. The model's
style targets (`stylecbn add-targets`) come along.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stylecbn.model.saving import (  # noqa: E402
    BUILT_IN_MODELS, built_in_model_path, load_model, save_model,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--float32", action="store_true", help="keep float32 weights")
    parser.add_argument("--name", default="default", choices=list(BUILT_IN_MODELS),
                        help="which built-in model it becomes")
    args = parser.parse_args()
    model = load_model(args.model)
    target = built_in_model_path(args.name)
    target.parent.mkdir(exist_ok=True)
    save_model(model, target, weights_dtype="float32" if args.float32 else "float16")
    print(f"{target}: {model.num_styles} styles, {target.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
