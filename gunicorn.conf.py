"""Gunicorn reads this file when started from the repository: `gunicorn wsgi:app`.

The settings live in the package (app/gunicorn_conf.py), so an installed desk uses
the same ones: `gunicorn -c python:app.gunicorn_conf wsgi:app`.
"""

from app.gunicorn_conf import *  # noqa
