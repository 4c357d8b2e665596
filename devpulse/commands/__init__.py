"""The core `devpulse` commands beyond routing: answering (`ask`) and the books (`cost`)."""
