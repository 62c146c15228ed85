"""`stylecbn train`, `stylecbn distill`, `stylecbn add-targets` and `stylecbn vgg-weights`:
thin layers over the library."""

import dataclasses
from pathlib import Path

import click

from stylecbn.cli.root import handle_errors
from stylecbn.training.config import (
    DistillConfig, TrainingConfig, read_config_file, setting_kind,
)

def _option(field):
    """The `stylecbn train` option of one setting, from its declaration
    (`stylecbn.training.config.setting`). Every default is None: "not given", so that a
    config file's value or a resumed run's own setting stays."""
    declared = field.metadata["setting"]
    kind = setting_kind(field)
    flags = declared["flags"] or (f"--{field.name.replace('_', '-')}",)
    extra = {}
    if kind is bool:
        flags = tuple(f"{flag}/--no-{flag[2:]}" for flag in flags)
    elif declared["path"]:
        extra["type"] = click.Path(path_type=str)
    elif declared["choices"] is not None and declared["metavar"] is None:
        extra["type"] = click.Choice(list(declared["choices"]))
    else:
        extra["type"] = kind
    if declared["metavar"] is not None:
        extra["metavar"] = declared["metavar"]
    shown = declared["shown"]
    if shown is None and "type" in extra and isinstance(extra["type"], click.Choice):
        shown = ""  # the choices are listed instead
    elif shown is None:
        default = field.default
        nothing = default is None or default is False or default == ""
        shown = "on" if default is True else "" if nothing else str(default)
    help_text = " ".join(part for part in (declared["help"], shown and f"[{shown}]") if part)
    return click.option(*flags, field.name, default=None, help=help_text or None, **extra)


def _setting_options(config_class):
    """A decorator adding one option per setting of `config_class` (`TrainingConfig`,
    `DistillConfig`), in the order they are declared."""
    def decorate(command):
        for field in reversed(dataclasses.fields(config_class)):
            if field.metadata["setting"]["option"]:
                command = _option(field)(command)
        return command
    return decorate


def _run_command(config_class):
    """The command of a run whose settings are `config_class`'s: `--config FILE`, one option
    per setting, `--resume` and `--force`, and errors as one line (`handle_errors`)."""
    def decorate(function):
        function = handle_errors(function)
        function = click.option("--force", is_flag=True,
                                help="Replace an existing output file.")(function)
        function = click.option("--resume", is_flag=True, help="Continue from the last "
                                "checkpoint in the run folder.")(function)
        function = _setting_options(config_class)(function)
        function = click.option("--config", "config_file", type=click.Path(path_type=str),
                                default=None, help="A toml or json file of settings; options "
                                "given here override it.")(function)
        return click.command()(function)
    return decorate


def _settings(config_class, config_file, resume, options):
    """The settings of a run: the config file's, then the options given; on `resume`, the
    run's own settings (from its last checkpoint) under both."""
    from stylecbn.training.checkpoints import checkpoint_config

    settings = read_config_file(config_file) if config_file else {}
    settings.update({name: value for name, value in options.items() if value is not None})
    if resume:
        # The run's own settings, then whatever this command line (or file) changes.
        run_dir = config_class.from_dict(
            {**{k: v for k, v in settings.items() if k in ("output", "run_dir")}}
        ).resolved_run_dir()
        settings = {**checkpoint_config(run_dir), **settings}
    settings["resume"] = resume
    source = f"config file {config_file}" if config_file else "options"
    return config_class.from_dict(settings, source=source)


@_run_command(TrainingConfig)
def train(config_file, resume, force, **options):
    """Train one network on many styles (or add styles to a trained one)."""
    from stylecbn.training.run import train as run_training

    run_training(_settings(TrainingConfig, config_file, resume, options), force=force)


@_run_command(DistillConfig)
def distill(config_file, resume, force, **options):
    """Make a small, fast copy of a trained model: a student network learns its styles from
    its outputs (the teacher paints each photo once; the run folder keeps the paintings;
    `--resume` continues a stopped run).

    \b
    Examples:
      stylecbn distill --teacher default --content photos/ -o fast.keras
      stylecbn distill -o fast.keras --resume
    """
    from stylecbn.training.distill import distill as run_distill

    run_distill(_settings(DistillConfig, config_file, resume, options), painter=apply_painter,
                force=force)


def apply_painter(teacher):
    """(name, paint): the teacher paints as `stylecbn apply` does (its default runtime)."""
    import numpy as np

    from stylecbn.applying.stylize import Stylizer

    stylizer = Stylizer(teacher)
    return (f"stylecbn apply (runtime {stylizer.runtime.name})",
            lambda photo, style: np.asarray(stylizer.stylize(photo, style, max_size=0)))


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
