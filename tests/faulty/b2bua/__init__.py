"""A B2BUA test PBX (see main.py): sans-I/O core, I/O shell, faults."""
