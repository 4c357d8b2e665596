"""`python -m devpulse ...`: the same entry point as the `devpulse` console script."""

from devpulse.cli import run

if __name__ == "__main__":
    run()
