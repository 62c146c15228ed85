"""The applying wing: a trained model on photos, frames and videos.

`stylize` the `Stylizer`; `runtimes` what runs the network; `refine` an output optimized
further, and a painting's style; `blend` a chosen style parsed once into a `Blend`; `conditioning`
what the network is conditioned on; `finish` colour and strength; `overviews` sheets,
interpolations and blend grids; `strips` large images strip by strip; `flicker` the flicker
reducer for frames. Imports the ground floor, media, model and perceptual, never training.
"""
