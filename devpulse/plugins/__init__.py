"""DevPulse's own behaviour, written as ordinary plugins and registered before any other.

Each stage has a package of its own; `bundled` lists them in the order they register.
Nothing is imported here, so that a module of one plugin (a backend's constants, say)
loads without all the others.
"""
