"""Training datasets: layout.py (where a dataset is and whether it is usable), archive.py (safe
extraction), store.py (uploaded datasets on disk).
"""
