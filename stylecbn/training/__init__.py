"""The training wing: making a model.

`config` the settings; `styles` the styles folder; `photos` the content photos; `style_targets`
the paintings' Gram matrices; `preflight` the checks before a run; `trainer` the Keras
pieces; `checkpoints` the checkpoint format; `preview` preview grids; `run` the run itself.
Imports the ground floor, media, model and perceptual, never applying.
"""
