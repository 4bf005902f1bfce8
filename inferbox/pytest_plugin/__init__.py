"""inferbox's pytest plugin, registered through the ``pytest11`` entry point ``inferbox``.

Installing inferbox makes ``pytest --platform ... --manifests ... --profile ...`` available in any
directory; ``-p no:inferbox`` turns it off. The core plugin holds the options, markers, the
``platform`` session fixture and the run report; the Kind and load parts add their own options.
"""

pytest_plugins = [
    "inferbox.pytest_plugin.core",
    "inferbox.pytest_plugin.kind",
    "inferbox.pytest_plugin.load",
]
