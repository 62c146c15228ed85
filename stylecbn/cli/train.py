"""`stylecbn train`, `stylecbn add-targets` and `stylecbn vgg-weights`: thin layers over the
library."""

from pathlib import Path

import click

from stylecbn.cli.root import handle_errors

# Option name -> TrainingConfig field, for the options that map one to one.
_OPTION_FIELDS = {
    "styles": "styles",
    "content": "content",
    "output": "output",
    "run_dir": "run_dir",
    "base": "base_model",
    "init_from": "init_model",
    "steps": "steps",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate",
    "crop_size": "crop_size",
    "precision": "precision",
    "seed": "seed",
    "normalization": "normalization",
    "preset": "preset",
    "width": "width_multiplier",
    "content_weight": "content_weight",
    "style_weight": "style_weight",
    "tv_weight": "total_variation_weight",
    "vgg_weights": "vgg_weights",
    "checkpoint_every": "checkpoint_every",
    "preview_every": "preview_every",
    "log_every": "log_every",
    "holdout": "holdout",
    "preview_size": "preview_size",
    "distribute": "distribute",
    "tensorboard": "tensorboard",
}


def _path_option(*names, **kwargs):
    return click.option(*names, type=click.Path(path_type=str), default=None, **kwargs)


@click.command()
@click.option("--config", "config_file", type=click.Path(path_type=str), default=None,
              help="A toml or json file of settings; options given here override it.")
@_path_option("--styles", help="Folder of style images (+ optional styles.toml). [styles]")
@_path_option("--content", help="Folder of content photos, searched recursively.")
@_path_option("-o", "--output", help="The model file to write. [model.keras]")
@_path_option("--run-dir", help="Checkpoints, previews, logs. [runs/<output stem>]")
@_path_option("--base", help="A trained model: add the --styles to it, training only their rows.")
@_path_option("--init-from", help="A trained model with the same styles and network: start "
              "from its weights (fresh optimizer, steps from 0).")
@click.option("--steps", type=int, default=None, help="Training steps. [40000]")
@click.option("--batch-size", type=int, default=None, help="[16]")
@click.option("--learning-rate", "--lr", "learning_rate", type=float, default=None, help="[1e-3]")
@click.option("--crop-size", type=int, default=None, help="Training crop side in px. [256]")
@click.option("--precision", type=click.Choice(["float32", "mixed_bfloat16"]), default=None)
@click.option("--seed", type=int, default=None, help="[0]")
@click.option("--normalization", type=click.Choice(["instance", "batch"]), default=None)
@click.option("--preset", default=None, metavar="NAME",
              help="The network: full (the default model's) or fast (thin, for CPUs). [full]")
@click.option("--width", type=float, default=None, help="Width multiplier of the network. [1.0]")
@click.option("--content-weight", type=float, default=None, help="[1.0]")
@click.option("--style-weight", type=float, default=None, help="[calibrated default]")
@click.option("--tv-weight", type=float, default=None, help="Total-variation weight. [0]")
@click.option("--vgg-weights", type=str, default=None,
              help="auto, imagenet, hed, or a .h5/.npz file. [auto]")
@click.option("--checkpoint-every", type=int, default=None, help="[500]")
@click.option("--preview-every", type=int, default=None, help="[500]")
@click.option("--log-every", type=int, default=None, help="[10]")
@click.option("--holdout", type=int, default=None, help="Photos kept for previews. [4]")
@click.option("--preview-size", type=int, default=None, help="Preview tile side in px. [128]")
@click.option("--distribute/--no-distribute", default=None,
              help="Data-parallel on all local devices.")
@click.option("--tensorboard/--no-tensorboard", default=None,
              help="TensorBoard scalars (TensorFlow backend). [on]")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the run folder.")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
@handle_errors
def train(config_file, resume, force, **options):
    """Train one network on many styles (or add styles to a trained one)."""
    from stylecbn.training.config import TrainingConfig, read_config_file
    from stylecbn.training.checkpoints import checkpoint_config
    from stylecbn.training.run import train as run_training

    settings = read_config_file(config_file) if config_file else {}
    given = {_OPTION_FIELDS[name]: value for name, value in options.items() if value is not None}
    settings.update(given)
    if resume:
        # The run's own settings, then whatever this command line (or file) changes.
        run_dir = TrainingConfig.from_dict(
            {**{k: v for k, v in settings.items() if k in ("output", "run_dir")}}
        ).resolved_run_dir()
        settings = {**checkpoint_config(run_dir), **settings}
    settings["resume"] = resume
    source = f"config file {config_file}" if config_file else "options"
    run_training(TrainingConfig.from_dict(settings, source=source), force=force)


@click.command("vgg-weights")
@click.option("--weights", default="auto", show_default=True,
              help="auto, imagenet, hed, or a Keras VGG-16 .h5 file.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=Path("vgg16_block4.npz"),
              show_default=True, help="The .npz file to write.")
@handle_errors
def vgg_weights(weights, output):
    """Write the loss network's VGG-16 weights (to block4) as a compact float16 .npz."""
    from stylecbn.perceptual.vgg import resolve_weights, write_compact_weights

    size = write_compact_weights(weights, output)
    click.echo(f"wrote {output} ({size / 2**20:.1f} MiB) from {resolve_weights(weights)[1]}")


@click.command("add-targets")
@click.argument("model", type=click.Path(path_type=str))
@click.option("--styles", required=True, type=click.Path(path_type=str),
              help="The styles folder the model was trained on.")
@click.option("-o", "--output", type=click.Path(path_type=str), default=None,
              help="The model file to write. [MODEL itself]")
@click.option("--vgg-weights", type=str, default=None,
              help="auto, imagenet, hed, or a .h5/.npz file. [the weights the model records]")
@handle_errors
def add_targets(model, styles, output, vgg_weights):
    """Give a model its style targets (the Gram matrices of its paintings), which refining
    (`apply --refine`, `--style-image`) needs; computed as its training computed them."""
    from stylecbn.training.style_targets import add_targets as run_add_targets

    run_add_targets(model, styles, output or model, vgg_weights=vgg_weights,
                    log=lambda line: click.echo(line, err=True))
