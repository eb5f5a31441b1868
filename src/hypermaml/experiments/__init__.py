"""Experiments that reproduce the paper's figures and tables (the 2-D toy of Figure 1/3)."""
