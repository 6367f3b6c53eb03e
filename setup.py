"""Build glue that pyproject.toml cannot express: the top-level templates/, static/ and
migrations/ ship inside the `app` package (as app/templates, app/static and app/migrations
in the wheel), next to the packages under app/. Everything else is in pyproject.toml.

The source tree (and so an editable install) keeps them at the top level, the project's
layout; app.config.RESOURCE_ROOT finds them in either place.
"""

from setuptools import find_namespace_packages, find_packages, setup

RESOURCES = {"app.templates": "templates", "app.static": "static", "app.migrations": "migrations"}


def resource_packages() -> list[str]:
    """Each resource folder and its subfolders, as packages that hold only data files."""
    names = []
    for package, folder in RESOURCES.items():
        subs = find_namespace_packages(where=folder, exclude=["*__pycache__*"])
        names += [package] + [f"{package}.{sub}" for sub in subs]
    return names


setup(
    packages=find_packages(include=["app", "app.*"]) + resource_packages(),
    package_dir=RESOURCES,
    package_data={name: ["*"] for name in resource_packages()},
)
