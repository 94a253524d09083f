"""PACS integration: intake.py (which STOW-RS instances are accepted), service.py (screening them in the
background), outputs.py (SC + SR for a result), results.py (the result store), client.py and delivery (sending
results back with retries).
"""
