"""Data for the prepare stage: the default arithmetic generator and the user-dataset loader."""
