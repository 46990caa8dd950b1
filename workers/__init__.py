"""The delivery engine (fan-out, deliver, dispatch) and its Celery face."""
