"""Named training recipes: `TrainConfig` values kept together in one JSON file.

A recipe is a JSON object of `TrainConfig` fields (`"model"` may be a
preset name or an inline architecture object). The package ships the
recipes in `named_recipes/` (`keras-wavevit train --recipe cifar10`); any
other `.json` file with the same keys works too. Options given alongside
a recipe replace its values.
"""

import json
import os

RECIPES_DIR = os.path.join(os.path.dirname(__file__), "named_recipes")


def recipe_names():
    """The names of the recipes shipped in the package.

    Example:

    >>> "cifar10" in recipe_names()
    True
    """
    return sorted(name[:-5] for name in os.listdir(RECIPES_DIR) if name.endswith(".json"))


def load_recipe(recipe, field_names):
    """Reads a recipe: a shipped name or the path of a JSON file.

    Args:
        recipe: A name from `recipe_names()` or a `.json` path.
        field_names: The option names a recipe may set.

    Returns:
        A dict of option values (`"_comment"` keys dropped).

    Raises:
        ValueError: An unknown name, an unreadable file, text that is not a
            JSON object, or keys that are not options (named).

    Example:

    >>> load_recipe("cifar10", ["model", "epochs"])  # doctest: +SKIP
    """
    path = recipe if recipe.endswith(".json") else os.path.join(RECIPES_DIR, recipe + ".json")
    if not os.path.isfile(path):
        raise ValueError(
            f"Unknown recipe {recipe!r}: expected one of {recipe_names()} or the path of an "
            "existing .json file."
        )
    with open(path, encoding="utf-8") as file:
        try:
            values = json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"Could not parse the recipe {path} as JSON: {error}.") from error
    if not isinstance(values, dict):
        raise ValueError(f"The recipe {path} must hold a JSON object of training options.")
    values = {key: value for key, value in values.items() if not key.startswith("_")}
    unknown = sorted(set(values) - set(field_names))
    if unknown:
        raise ValueError(f"The recipe {path} sets unknown training options {unknown}.")
    return values
