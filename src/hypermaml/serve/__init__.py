"""A local web page to try a trained model: draw or upload a few examples of new classes, then a
query, and see the prediction, the probabilities and what adaptation changed (``app.py``); a
bounded load test of such a server (``load.py``). Needs ``hypermaml[serve]``."""
