"""mslesseg-nnunet: nnU-Net v2 extension for MS lesion segmentation challenges."""
import importlib.abc
import importlib.util
import sys
import tomllib
from pathlib import Path

__version__ = "0.1.0"


class _CheckoutFolders(importlib.abc.MetaPathFinder):
    """Finds the product card's top-level folders of a checkout (``ensembles/`` ...) as the
    sub-packages pyproject's ``package-dir`` installs them as (``mslesseg_nnunet.ensembles``),
    so that the checkout imports from its root without installing."""

    def __init__(self, folders: dict[str, Path]):
        self.folders = folders

    def find_spec(self, name, path=None, target=None):
        folder = self.folders.get(name)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])


def _checkout_folders() -> dict[str, Path]:
    """{sub-package: folder} from the checkout's pyproject.toml; {} when installed."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        return {}
    package_dir = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-dir"]
    return {name: pyproject.parent / folder for name, folder in package_dir.items() if name != __name__}


if _folders := _checkout_folders():
    sys.meta_path.insert(0, _CheckoutFolders(_folders))  # before any other install's mapping
