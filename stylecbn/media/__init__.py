"""The media wing: pictures and videos in and out, with NumPy, Pillow and PyAV (no Keras).

`reading` image files to arrays; `pixels` any pixel data to uint8 RGB, and resizing; `writing`
arrays to image files, atomically; `truncation` finds files whose data ends early; `video`
video files in and out; `sheets` labelled sheets laid out; `sample` the sample photo, drawn
in code; `outputs` which output file each input of a batch gets. Imports only the ground floor.
"""
