"""Maps training/ and export/ into the reggan_plugin namespace (see pyproject.toml)."""
from setuptools import find_packages, setup

SUBTREES = {"training": "reggan_plugin.training", "export": "reggan_plugin.export"}

packages = find_packages(include=["reggan_plugin", "reggan_plugin.*"])
package_dir = {"reggan_plugin": "reggan_plugin"}
for folder, name in SUBTREES.items():
    package_dir[name] = folder
    packages += [name + sub.removeprefix(folder) for sub in find_packages(include=[folder, f"{folder}.*"])]

setup(packages=packages, package_dir=package_dir)
