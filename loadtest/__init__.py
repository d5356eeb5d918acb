"""`make load`: a bounded load test of PoV under gunicorn with locust (see loadtest/run.py)."""
