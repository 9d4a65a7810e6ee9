"""A screenshot of a run's report.html with headless Chromium, for the README (docs/report.png).

    python bench/report_screenshot.py RUN [--out docs/report.png] [--width 1200] [--height 2200]

Writes ``RUN/report.html`` first when it is missing (``attncoach report RUN``), then has
Debian's ``chromium`` (``apt-get install chromium``) render its top ``--height`` pixels and
shrinks the PNG to a palette of 256 colours so that it stays small (Pillow).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from attncoach.report import write_report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=2200)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: no chromium binary: apt-get install -y chromium", file=sys.stderr)
        return 2
    page = args.run / "report.html"
    if not page.is_file():
        write_report([args.run])
    with tempfile.TemporaryDirectory() as profile:
        raw = Path(profile) / "shot.png"
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}/data",
                f"--window-size={args.width},{args.height}",
                f"--screenshot={raw}",
                page.resolve().as_uri(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        from PIL import Image

        Image.open(raw).convert("RGB").quantize(colors=256).save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
