"""Command line: ``python -m ionofield.osse --samples DIR`` writes one day of a storm world.

See :func:`ionofield.osse.write_samples`; ``python -m ionofield.osse --help`` lists
the options.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from ionofield.osse.samples import write_samples


def main(argv: Sequence[str] | None = None) -> None:
    """Write the sample files and print their paths, one a line.

    Parameters
    ----------
    argv
        Arguments; default ``sys.argv[1:]``.
    """
    parser = argparse.ArgumentParser(
        prog="python -m ionofield.osse",
        description="Write one day of a synthetic storm world in the real file formats "
        "(IONEX TEC maps, CDAAC ionPrf files, a netCDF table of RO profiles, a README).",
    )
    parser.add_argument("--samples", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--day", default="2024-05-10", help="UT day (default %(default)s)")
    parser.add_argument(
        "--profiles", type=int, default=300, help="number of RO profiles (default %(default)s)"
    )
    parser.add_argument(
        "--ionprf",
        type=int,
        default=20,
        help="how many are written as ionPrf files (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default %(default)s)")
    parser.add_argument("--cache-dir", default=None, help="IRI cube cache folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in write_samples(
        args.samples,
        day=args.day,
        n_profiles=args.profiles,
        n_ionprf=args.ionprf,
        seed=args.seed,
        cache_dir=args.cache_dir,
    ):
        print(path)


if __name__ == "__main__":
    main()
