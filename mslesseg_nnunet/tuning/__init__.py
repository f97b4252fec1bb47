"""``mslesseg tune``: fusion and postprocessing parameters (and members) chosen on cross-validation.

- ``search``: the grid, the objectives (MSLesSeg mean Dice, MSSEG-2 criteria by rank) and scoring.
- ``selection``: the subset of models whose ensemble scores best (exhaustive or greedy).
- ``tune``: loads the models' CV predictions once per case and runs the search.
"""
