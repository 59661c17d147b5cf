"""Optional dependencies: one wording for the message when an extra is missing."""


def install_hint(extra):
    """How to install the optional dependency group `extra` into a fastmnist checkout."""
    return (f"install the `{extra}` extra: pip install -e '.[{extra}]' in the fastmnist "
            "checkout")


def missing(what, package, extra):
    """ImportError saying that `what` needs `package`, and how to install it."""
    return ImportError(f"{what} needs {package}: {install_hint(extra)}")


def require(module, what, package, extra):
    """Import and return `module`, or raise :func:`missing`'s ImportError."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing(what, package, extra) from None
