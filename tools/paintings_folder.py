"""Make a styles folder for the shared paintings: links to the images plus a manifest.

The paintings in ../shared/data/paintings are never copied into the project. This script makes
a git-ignored folder (default bundle/paintings) whose images are symbolic links to them and
whose styles.toml carries each painting's short name and credit (title, artist, year) read
from ../shared/data/SOURCES.md:

    python tools/paintings_folder.py [--data ../shared/data] [--out bundle/paintings] [--copy]

--copy copies the files instead of linking (for carrying to another machine; the copy stays in
the git-ignored bundle folder).
"""

import argparse
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stylecbn.fileio import atomic_path  # noqa: E402

# Short command-line names for the paintings (file stem -> name).
SHORT_NAMES = {
    "ciurlionis_castle_fairy_tale": "castle_fairy_tale",
    "degas_the_dance_foyer_at_the_opera": "dance_foyer",
    "delaunay_portrait_of_jean_metzinger": "metzinger",
    "gauguin_te_fare": "te_fare",
    "hokusai_the_great_wave_off_kanagawa": "great_wave",
    "kandinsky_composition_vii": "composition_vii",
    "mondrian_tableau_no2_composition_no7": "mondrian",
    "monet_san_giorgio_maggiore_at_dusk": "san_giorgio",
    "monet_the_cliff_walk_at_pourville": "cliff_walk",
    "monet_water_lilies_1919": "water_lilies",
    "munch_the_scream": "scream",
    "toulouse_lautrec_in_bed": "in_bed",
    "turner_the_shipwreck_of_the_minotaur": "shipwreck",
    "vangogh_self_portrait_1889": "self_portrait",
    "vangogh_the_starry_night": "starry_night",
    "vangogh_wheat_field_with_cypresses": "wheat_field",
    "vermeer_girl_with_a_pearl_earring": "pearl_earring",
}


def read_sources(sources_md):
    """{file name: credit line} from the paintings table of SOURCES.md."""
    credits = {}
    for line in sources_md.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 9 or not re.search(r"\.(jpe?g|png)$", cells[0]):
            continue
        file, title, artist, year = cells[0], cells[1], cells[2], cells[3]
        title = re.sub(r"\s*\(.*\)$", "", title)  # drop the long parenthesised notes
        credits[file] = f"{title}, {artist}, {year} (public domain; from {cells[6]})"
    return credits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "bundle" / "paintings"))
    parser.add_argument("--copy", action="store_true")
    args = parser.parse_args()
    data, out = Path(args.data), Path(args.out)
    paintings = data / "paintings"
    if not paintings.is_dir():
        sys.exit(f"error: {paintings} does not exist; pass --data with the shared data folder")
    credits = read_sources(data / "SOURCES.md")
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for image in sorted(paintings.iterdir()):
        if image.suffix.lower() not in (".jpg", ".jpeg", ".png"):
            continue
        target = out / image.name
        if target.is_symlink() or target.exists():
            target.unlink()
        if args.copy:
            shutil.copyfile(image, target)
        else:
            target.symlink_to(image.resolve())
        entries.append(
            {
                "file": image.name,
                "name": SHORT_NAMES.get(image.stem, image.stem),
                "credit": credits.get(image.name, ""),
            }
        )
    lines = ["# Made by tools/paintings_folder.py from SOURCES.md. Sorted file names = indices.", ""]
    for entry in entries:
        lines += ["[[style]]"] + [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in entry.items()] + [""]
    with atomic_path(out / "styles.toml") as tmp:
        tmp.write_text("\n".join(lines), encoding="utf-8")
    print(f"{len(entries)} paintings in {out}")


if __name__ == "__main__":
    main()
