"""Fine-tuning in the background: spec.py (the typed job request), store.py (jobs in SQLite), runner.py
(queue, worker processes, promotion), worker.py (one job in its own process), datasets/ (uploads).
"""
