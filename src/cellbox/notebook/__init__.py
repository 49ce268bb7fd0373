"""The notebook front-end: the `%container` magics and the views they show."""
