"""Production WSGI server settings: `gunicorn -c gunicorn.conf.py wsgi:app`.

Threads suit this app: a request spends much of its time waiting on PostgreSQL. Access logs are off
because URLs and clients are not needed to run the service and logs must carry no personal data.
"""
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# One process per core and a few threads each: measured here (benchmarks/), more processes than
# cores, or more threads, only added GIL contention and tail latency; four threads cover the waits
# on PostgreSQL.
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 2)))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = 30
graceful_timeout = 30
keepalive = 5
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")
# Behind a reverse proxy on the same host: trust its X-Forwarded-* headers only.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
