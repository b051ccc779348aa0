"""Exit 0 if every requirement in the given requirements file is installed at a matching version, else 1.
Lets `make deps` skip pip (and the network) when nothing is missing."""
import sys
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement


def main(path: str) -> int:
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        req = Requirement(line)
        try:
            have = version(req.name)
        except PackageNotFoundError:
            return 1
        if not req.specifier.contains(have, prereleases=True):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
