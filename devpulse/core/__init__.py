"""The core: values, errors, configuration, plugin manager and the Router."""
