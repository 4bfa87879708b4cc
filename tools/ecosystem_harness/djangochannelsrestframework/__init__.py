"""djangochannelsrestframework's tests, as a package (its sdist ships no __init__.py)."""
